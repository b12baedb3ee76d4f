"""Linkage benchmark (step 3-0): kojinbango's matcher vs Splink (DuckDB) on the same labelled data.

    kojinbango bench linkage --records N

1. Generates a register (synthetic population with history: moves within the city, former names,
   people moved out or dead, same-name-same-birthday pairs put at one address, twins) and about N
   dirty business records (tax + welfare, ``kojinbango.synth.business``), plus non-residents who live
   elsewhere (known only to a simulated 住基ネット).  The truth is kept apart.
2. Runs each system in its own process (so its wall time and peak memory are its own) on the same
   data and prints one JSON object per system: precision and recall of the automatic links to
   register persons, records sent to review, wall time, peak RSS.

Both systems get the register with its history (one row per known name × address for Splink) and the
same blocking keys.  Splink gets the keys already normalised by kojinbango (it has no Japanese
normalisation of its own); that work is excluded from its time but included in kojinbango's.  Splink's
model: Levenshtein comparisons on 氏名/フリガナ/生年月日/住所 keys, exact 性別, λ from a deterministic
rule, u by random sampling, m by EM; a record links automatically when its best person has match
probability ≥ 0.99 and no other person does, review when the best is ≥ 0.5.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pickle
import random
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

LG_CODE, OTHER = "131016", "131041"
AS_OF = dt.date(2025, 4, 1)
AUTO, REVIEW = 0.99, 0.5


def _peak_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# ------------------------------------------------------------------------------------------------
# data


def build(records: int, seed: int = 1) -> dict[str, Any]:
    from kojinbango.synth import generate_population
    from kojinbango.synth.addresses import AddressBook, municipality
    from kojinbango.synth.business import SourcePerson, generate_business_data

    n_register = max(10, int(records / 0.8))  # ≈ 0.8 business records per resident
    rng = random.Random(seed)
    households = generate_population(LG_CODE, n_register, seed, AS_OF)
    book = AddressBook(municipality(LG_CODE), random.Random(seed + 1))
    persons: list[SourcePerson] = []
    surnames: list[tuple[str, str]] = []
    for hi, h in enumerate(households):
        address, extra, former = h.address, h.address_extra, ()
        if rng.random() < 0.08:  # 転居 within the city: the register's history knows the old address
            _, address, extra = book.next(0.3)
            former = (h.address,)
        status = "active"
        r = rng.random()
        if r < 0.02:
            status = "moved_out"
        elif r < 0.03:
            status = "dead"
        for p in h.members:
            surnames.append((p.family_name, p.family_kana))
            names: tuple[tuple[str, str], ...] = ()
            if p.relationship in ("妻", "子の妻") and rng.random() < 0.3:
                names = (surnames[rng.randrange(len(surnames))],)  # 婚姻前の氏 in the history
            persons.append(
                SourcePerson(
                    f"r{len(persons)}",
                    p.family_name,
                    p.given_name,
                    p.family_kana,
                    p.given_kana,
                    p.birth_date,
                    p.sex,
                    address,
                    extra,
                    f"h{hi}",
                    p.relationship,
                    status,
                    former,
                    names,
                )  # fmt: skip
            )
    # same-name-same-birthday pairs at one address (different rooms of one building)
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, p in enumerate(persons):
        groups.setdefault((p.family_name, p.given_name, p.birth_date, p.sex), []).append(i)
    pairs = [g for g in groups.values() if len(g) == 2]
    for a, b in pairs[: len(pairs) // 2]:
        pa = persons[a]
        persons[b] = replace(persons[b], address=pa.address, address_extra=(pa.address_extra or "") + "別室")
    outsiders_h = generate_population(OTHER, max(10, n_register // 20), seed + 7, AS_OF)
    outsiders = [
        SourcePerson(
            f"o{i}",
            p.family_name,
            p.given_name,
            p.family_kana,
            p.given_kana,
            p.birth_date,
            p.sex,
            h.address,
            h.address_extra,
            f"x{hi}",
            p.relationship,
            "non_resident",
        )  # fmt: skip
        for i, (hi, h, p) in enumerate((hi, h, p) for hi, h in enumerate(outsiders_h) for p in h.members)
    ]
    data = generate_business_data(persons, outsiders, seed, AS_OF)
    return {"persons": persons, "outsiders": outsiders, "rows": data.rows, "truth": data.truth}


def _score(data: dict[str, Any], links: dict[int, str], review: set[int]) -> dict[str, Any]:
    truth = data["truth"]
    in_register = sum(1 for t in truth if t.person_key.startswith("r"))
    correct = sum(1 for i, key in links.items() if truth[i].person_key == key)
    return {
        "records": len(truth),
        "records_of_register_persons": in_register,
        "auto_links": len(links),
        "wrong_auto_links": len(links) - correct,
        "precision": round(correct / len(links), 6) if links else None,
        "recall": round(correct / in_register, 6) if in_register else None,
        "review": len(review),
        "review_share": round(len(review) / len(truth), 6),
    }


# ------------------------------------------------------------------------------------------------
# kojinbango


def run_kojinbango(data: dict[str, Any]) -> dict[str, Any]:
    from kojinbango.domain.address import address_key
    from kojinbango.domain.text import name_key
    from kojinbango.domain.wareki import parse_date
    from kojinbango.municipality.addressee.matcher import Keys, Matcher, person_facts, record_facts

    t0 = time.perf_counter()
    keys = Keys(("東京都", "千代田区"))
    m = Matcher()
    for i, p in enumerate(data["persons"]):
        names = [(p.family_name, p.given_name)] + [(f, p.given_name) for f, _ in p.known_former_names]
        kanas = [(p.family_kana, p.given_kana)] + [(k, p.given_kana) for _, k in p.known_former_names]
        m.add(
            person_facts(
                keys, i, names, kanas, p.birth_date, p.sex, [p.address, *p.known_former_addresses], p.status
            )
        )
    # 住基ネット, simulated: J-LIS's rule (氏名・生年月日・住所 keys, 性別 when given)
    jukinet: dict[tuple[str, dt.date, str], list[str]] = {}
    for o in data["outsiders"]:
        full = f"{o.address}\u3000{o.address_extra}" if o.address_extra else o.address
        jukinet.setdefault(
            (name_key(o.family_name + o.given_name), o.birth_date, address_key(full)), []
        ).append(o.key)
    t1 = time.perf_counter()
    links: dict[int, str] = {}
    review: set[int] = set()
    non_resident = {"linked": 0, "wrong": 0}
    for i, r in enumerate(data["rows"]):
        birth = parse_date(r.birth_date)
        d = m.decide(record_facts(keys, r.name, r.kana, birth, r.sex, r.address))
        if d.outcome == "link":
            assert d.pid is not None
            links[i] = f"r{d.pid}"
            continue
        if not keys.is_local(r.address):
            hit = jukinet.get((keys.name(r.name), birth, address_key(r.address)), [])
            if len(hit) == 1:
                non_resident["linked"] += 1
                non_resident["wrong"] += hit[0] != data["truth"][i].person_key
                continue
        if d.outcome == "review":
            review.add(i)
    t2 = time.perf_counter()
    return {
        "system": "kojinbango",
        **_score(data, links, review),
        "non_resident_links": non_resident,
        "seconds": round(t2 - t0, 2),
        "seconds_index": round(t1 - t0, 2),
        "seconds_match": round(t2 - t1, 2),
        "peak_rss_mib": _peak_mib(),
    }


# ------------------------------------------------------------------------------------------------
# Splink


def _splink_tables(data: dict[str, Any]) -> tuple[Any, Any]:
    import pyarrow as pa

    from kojinbango.domain.wareki import parse_date
    from kojinbango.municipality.addressee.matcher import Keys

    keys = Keys(("東京都", "千代田区"))
    reg: dict[str, list[Any]] = {
        k: [] for k in ("unique_id", "person", "name", "kana", "birth", "sex", "address")
    }
    for i, p in enumerate(data["persons"]):
        names = [(p.family_name + p.given_name, p.family_kana + p.given_kana)]
        names += [(f + p.given_name, k + p.given_kana) for f, k in p.known_former_names]
        for j, (n, k) in enumerate(names):
            for a_i, a in enumerate([p.address, *p.known_former_addresses]):
                reg["unique_id"].append(f"r{i}#{j}#{a_i}")
                reg["person"].append(f"r{i}")
                reg["name"].append(keys.name(n))
                reg["kana"].append(keys.kana(k) or None)
                reg["birth"].append(p.birth_date.isoformat())
                reg["sex"].append(p.sex)
                reg["address"].append(keys.address(a))
    biz: dict[str, list[Any]] = {
        k: [] for k in ("unique_id", "person", "name", "kana", "birth", "sex", "address")
    }
    for i, r in enumerate(data["rows"]):
        biz["unique_id"].append(f"b{i}")
        biz["person"].append(None)
        biz["name"].append(keys.name(r.name))
        biz["kana"].append(keys.kana(r.kana) or None)
        biz["birth"].append(parse_date(r.birth_date).isoformat())
        biz["sex"].append(r.sex)
        biz["address"].append(keys.address(r.address))
    return pa.table(reg), pa.table(biz)


def run_splink(data: dict[str, Any]) -> dict[str, Any]:
    import duckdb
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    reg, biz = _splink_tables(data)
    t0 = time.perf_counter()
    con = duckdb.connect()
    con.register("reg_arrow", reg)
    con.register("biz_arrow", biz)
    con.execute("CREATE TABLE reg AS SELECT * FROM reg_arrow")
    con.execute("CREATE TABLE biz AS SELECT * FROM biz_arrow")
    db_api = DuckDBAPI(connection=con)
    settings = SettingsCreator(
        link_type="link_only",
        comparisons=[
            cl.LevenshteinAtThresholds("name", [1, 2]),
            cl.LevenshteinAtThresholds("kana", [1, 2]),
            cl.LevenshteinAtThresholds("birth", [1, 2]),
            cl.ExactMatch("sex"),
            cl.LevenshteinAtThresholds("address", [1, 3]),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("name", "birth"),
            block_on("kana", "birth"),
            block_on("birth", "address"),
            block_on("name", "address"),
        ],
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )
    linker = Linker(
        [db_api.register("reg", table_name="reg_in"), db_api.register("biz", table_name="biz_in")],
        settings,
        log_level="WARNING",
    )
    linker.training.estimate_probability_two_random_records_match(
        [block_on("name", "birth", "address")], recall=0.9
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=2_000_000)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("name"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("birth", "address"))
    pred = linker.inference.predict(threshold_match_probability=REVIEW)
    t1 = time.perf_counter()
    rows = con.execute(
        f"""
        WITH p AS (
          SELECT CASE WHEN unique_id_l LIKE 'b%' THEN unique_id_l ELSE unique_id_r END AS rec,
                 split_part(CASE WHEN unique_id_l LIKE 'b%' THEN unique_id_r ELSE unique_id_l END, '#', 1) AS person,
                 match_probability AS prob
          FROM {pred.physical_name}
        ), best AS (SELECT rec, person, max(prob) AS prob FROM p GROUP BY rec, person)
        SELECT rec, arg_max(person, prob) AS person, max(prob) AS prob,
               count(*) FILTER (WHERE prob >= {AUTO}) AS strong
        FROM best GROUP BY rec
        """
    ).fetchall()
    t2 = time.perf_counter()
    links: dict[int, str] = {}
    review: set[int] = set()
    for rec, person, prob, strong in rows:
        i = int(rec[1:])
        if prob >= AUTO and strong == 1:
            links[i] = person
        else:
            review.add(i)
    return {
        "system": "splink",
        "version": __import__("splink").__version__,
        **_score(data, links, review),
        "seconds": round(t2 - t0, 2),
        "seconds_train_predict": round(t1 - t0, 2),
        "peak_rss_mib": _peak_mib(),
        "note": "keys normalised by kojinbango beforehand (not timed)",
    }


# ------------------------------------------------------------------------------------------------


def run(records: int, splink: bool = True, seed: int = 1) -> list[dict[str, Any]]:
    t0 = time.perf_counter()
    data = build(records, seed)
    gen = round(time.perf_counter() - t0, 1)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.pickle"
        with open(path, "wb") as fh:
            pickle.dump(data, fh, protocol=pickle.HIGHEST_PROTOCOL)
        del data
        for system in ["kojinbango"] + (["splink"] if splink else []):
            env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", system, str(path)],
                capture_output=True,
                text=True,
                env=env,
            )
            if proc.returncode != 0:
                results.append({"system": system, "error": proc.stderr.strip().splitlines()[-5:]})
                continue
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            result["generation_seconds"] = gen
            results.append(result)
    return results


def _worker(system: str, path: str) -> None:
    with open(path, "rb") as fh:
        data = pickle.load(fh)
    result = run_kojinbango(data) if system == "kojinbango" else run_splink(data)
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        _worker(sys.argv[2], sys.argv[3])
    else:
        for r in run(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000):
            print(json.dumps(r, ensure_ascii=False))
