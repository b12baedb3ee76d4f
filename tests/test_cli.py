"""The command line as a new user meets it."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kojinbango.common.logs import redact

CLI = [sys.executable, "-m", "kojinbango.cli"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    ("kind", "value", "ok", "why"),
    [
        ("mynumber", "123456789012", False, "check digit"),
        ("mynumber", "123456789018", True, ""),
        ("mynumber", "１２３４５６７８９０１８", True, ""),
        ("mynumber", " 123456789018 ", True, ""),
        ("mynumber", "12345678901", False, "expected twelve digits"),
        ("mynumber", "12345678901a", False, "not a digit"),
        ("corporate", "5835678256246", True, ""),
        ("lg-code", "131016", True, ""),
        ("lg-code", "131017", False, "check digit"),
    ],
)
def test_validate(kind: str, value: str, ok: bool, why: str) -> None:
    r = run("validate", kind, value)
    assert r.returncode == (0 if ok else 1)
    if ok:
        assert r.stdout.strip() == "valid"
    else:
        assert why in r.stdout.lower()
        assert value.strip() not in r.stdout  # the identifier itself is never echoed


def test_demo_no_serve_json_exports_and_logs(tmp_path: Path) -> None:
    d = tmp_path / "demo"
    r = run("demo", "--data-dir", str(d), "--residents", "300", "--no-serve")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) - {"linkage"} == {
        "municipalities",
        "numbers_issued",
        "notices_written",
        "errors",
        "cards",
        "staff",
    }
    # staff terminal log-ins: 住民記録, 税務, 福祉, 管理者 per municipality; passwords stay in the 0600 file
    assert {tuple(a["roles"]) for a in out["staff"]} == {
        ("resident_records",),
        ("tax",),
        ("welfare",),
        ("admin",),
    }
    assert all("password" not in a and a["totp_secret"] for a in out["staff"])
    assert (d / "secrets" / "demo-staff.json").stat().st_mode & 0o077 == 0
    assert [c["state"] for c in out["cards"]][-1].startswith("suspended") and len(out["cards"]) == 3
    assert out["errors"] == []
    assert [m["code"] for m in out["municipalities"]] == ["131016", "131041"]
    for m in out["municipalities"]:
        assert set(m) == {"code", "name", "residents", "numbered"} and m["residents"] == m["numbered"] > 0
    total = sum(m["residents"] for m in out["municipalities"])
    assert out["numbers_issued"] == out["notices_written"] == total  # births added, the move added none

    jukinet = run("export", "jukinet", "--data-dir", str(d))
    rows = list(csv.DictReader(io.StringIO(jukinet.stdout)))
    current = [row for row in rows if row["status"] == "current"]
    assert len(current) == total
    identifiers = {row["my_number"] for row in rows} | {row["resident_code"] for row in rows}
    for code in ("131016", "131041"):
        res = run("export", "residents", "--data-dir", str(d), "--municipality", code)
        reader = csv.DictReader(io.StringIO(res.stdout))
        assert reader.fieldnames and {
            "resident_code",
            "my_number",
            "name",
            "kana",
            "birth_date",
            "sex",
            "address",
        } <= set(reader.fieldnames)
        for row in reader:
            if row["status"] == "active":
                assert row["my_number"] in identifiers

    # The portal example: an exchange about a demo card's holder, then their やりとり履歴 shows it proven.
    example_file = d / "linkage" / "portal-example.json"
    assert example_file.stat().st_mode & 0o077 == 0  # it holds the card's 個人番号
    example = json.loads(example_file.read_text(encoding="utf-8"))
    assert example["resident"] == out["cards"][0]["name"]
    ask, show = (step["command"].split()[1:] for step in example["steps"])
    before = json.loads(run(*show).stdout)
    asked = run(*ask)
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert answer["status"] == "answered" and answer["data"]["name"] == example["resident"]
    shown = run(*show)
    assert shown.returncode == 0, shown.stderr
    records = json.loads(shown.stdout)
    assert len(records["records"]) == len(before["records"]) + 1 and records["all_proofs_valid"]
    assert {r["exchange_id"]: r["proof_valid"] for r in records["records"]}[answer["exchange_id"]] is True

    # No 個人番号 or 住民票コード in clear in any log the demo wrote.
    logs = "".join(p.read_text(encoding="utf-8") for p in (d / "logs").glob("*.log"))
    assert logs  # the demo does log
    leaked = [i for i in identifiers if i and i in logs]
    assert leaked == []


def test_demo_with_a_municipality_in_direct_mode(tmp_path: Path) -> None:
    """``demo --direct 131016`` (論点2): the whole demo runs with 千代田区 answering the network itself;
    its scenarios and the portal example answer from its 正本, and a nation made one way is not
    reused the other way."""
    d = tmp_path / "demo"
    r = run("demo", "--data-dir", str(d), "--residents", "300", "--no-serve", "--direct", "131016")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["errors"] == []
    assert all(c["direct"] is True for c in out["linkage"]["connected"]["m131016"]["copies"].values())
    assert (d / "m131016-linkage.db").exists()
    statuses = []
    for scenario in json.loads((d / "linkage" / "scenarios.json").read_text(encoding="utf-8")):
        asked = run(*scenario["command"].split()[1:])
        statuses.append((json.loads(asked.stdout)["status"], asked.returncode))
    assert statuses == [("answered", 0), ("answered", 0), ("refused", 1)]
    example = json.loads((d / "linkage" / "portal-example.json").read_text(encoding="utf-8"))
    ask, show = (step["command"].split()[1:] for step in example["steps"])
    answered = run(*ask)
    assert answered.returncode == 0 and json.loads(answered.stdout)["status"] == "answered"
    shown = run(*show)
    assert shown.returncode == 0 and json.loads(shown.stdout)["all_proofs_valid"] is True
    records = run("exchange", "records", "--data-dir", str(d))
    assert records.returncode == 0 and json.loads(records.stdout)["agree"] is True

    again = run("demo", "--data-dir", str(d), "--no-serve", "--direct", "131041")
    assert again.returncode == 2 and "made without direct mode for it" in again.stderr


def test_export_unknown_municipality_is_a_clear_error(small_nation_dir: Path) -> None:
    r = run("export", "residents", "--data-dir", str(small_nation_dir), "--municipality", "999999")
    assert r.returncode != 0 and "no municipality with code 999999" in r.stderr


def test_redaction_masks_identifier_shaped_digits() -> None:
    assert (
        redact("number 123456789018 and code 12345678903 ok 2026")
        == "number ********9018 and code *******8903 ok 2026"
    )
    assert re.search(r"\d{11}", redact("１２３４５６７８９０１８")) is None


def test_init_refuses_an_existing_or_unfinished_nation(small_nation_dir: Path, tmp_path: Path) -> None:
    r = run("init", "--data-dir", str(small_nation_dir), "--residents", "10")
    assert r.returncode == 2 and "already holds a nation" in r.stderr
    d = tmp_path / "half"
    d.mkdir()
    (d / ".init-unfinished").touch()
    r = run("init", "--data-dir", str(d), "--residents", "10")
    assert r.returncode == 2 and "unfinished" in r.stderr


def test_a_refused_init_leaves_no_trace(tmp_path: Path) -> None:
    """Bad arguments are refused before anything is written: not even the log folder is made."""
    d = tmp_path / "n"
    r = run("init", "--data-dir", str(d), "--residents", "10", "--direct", "131017")
    assert r.returncode == 2 and "check digit" in r.stderr
    assert not d.exists()


def test_intro_without_a_nation_says_so(tmp_path: Path) -> None:
    r = run("intro", "--data-dir", str(tmp_path / "nothing"))
    assert r.returncode == 2 and "kojinbango init" in r.stderr


def test_a_logged_traceback_is_redacted_too(tmp_path: Path) -> None:
    """A database error's message names its parameters; its traceback must not carry a number."""
    import logging

    from kojinbango.common.logs import configure

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    log_file = tmp_path / "service.log"
    try:
        configure(log_file)
        try:
            raise ValueError("[parameters: ('123456789018', 'P000000001')]")
        except ValueError:
            logging.getLogger("kojinbango.test").exception("an item of a batch failed")
        for h in root.handlers:
            h.flush()
            h.close()
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    text = log_file.read_text(encoding="utf-8")
    assert "an item of a batch failed" in text and "Traceback" in text
    assert "123456789018" not in text and "********9018" in text


def test_a_service_settles_its_heap_before_it_serves() -> None:
    import gc

    from kojinbango.cli import FULL_PASS_EVERY, settle_heap

    threshold = gc.get_threshold()
    try:
        gc.unfreeze()
        marker = [object()]  # a container alive before: frozen with the rest
        settle_heap()
        assert gc.get_freeze_count() > 0 and not any(o is marker for o in gc.get_objects())
        assert gc.get_threshold() == (threshold[0], threshold[1], FULL_PASS_EVERY)
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
