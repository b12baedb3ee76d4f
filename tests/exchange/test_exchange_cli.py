"""`kojinbango exchange …` as a new user runs it: on a data directory with nothing running."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from exchange_helpers import cli_args, scenarios

from kojinbango.cli import main

REQUIRED = {"id", "querier", "affair", "provider", "info"}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def cli_dir(linkage_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cli") / "nation"
    shutil.copytree(linkage_dir, d)
    return d


def test_table(cli_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "exchange", "table", "--data-dir", str(cli_dir))
    assert code == 0
    rows = json.loads(out)
    assert len(rows) >= 8 and all(set(r) >= REQUIRED for r in rows)
    ids = {r["id"]: r for r in rows}
    assert (
        ids["child-allowance"]["querier"] == "municipality"
        and "地方税関係情報" in ids["child-allowance"]["info"]
    )
    assert ids["pension-exemption"]["querier"] == "agency"
    assert all(r["illustrative"] for r in rows)


def test_the_three_scenarios_from_the_cli(cli_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    got = []
    for s in scenarios(cli_dir):
        args = cli_args(s["command"], cli_dir)
        code, out, err = run(capsys, *args)
        got.append((code, json.loads(out.strip().splitlines()[-1]), err))
    (c1, a1, _), (c2, a2, _), (c3, a3, err3) = got
    assert c1 == 0 and a1["status"] == "answered" and a1["signature_valid"] is True
    assert {"as_of", "provider", "signature_valid"} <= set(a1) and a1["provider"] == "131016"
    assert c2 == 0 and a2["querier"] == "nenkin" and a2["as_of"]
    assert c3 == 1 and a3["status"] == "refused" and "legal table" in err3
    for _, answer, _ in got:
        assert not any(ch.isdigit() and len(ch) == 12 for ch in json.dumps(answer).split('"'))
    code, out, _ = run(capsys, "exchange", "records", "--data-dir", str(cli_dir))
    assert code == 0 and json.loads(out)["agree"]
    code, out, _ = run(capsys, "exchange", "verify-log", "--data-dir", str(cli_dir))
    assert code == 0 and json.loads(out)["ok"]
    code, out, _ = run(capsys, "exchange", "status", "--data-dir", str(cli_dir))
    status = json.loads(out)
    assert code == 0 and status["pending_by_provider"] == []
    assert status["exchanges"]["answered"] >= 2 and status["exchanges"]["refused"] >= 1
    assert status["log"]["entries"] == sum(status["exchanges"].values()) >= 3
    assert status["log"]["signed_tree_size"] <= status["log"]["entries"]


def test_waiting_lists_nothing_once_every_answer_is_in(
    cli_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for querier in ("nenkin", "131041"):
        code, out, _ = run(capsys, "exchange", "waiting", "--data-dir", str(cli_dir), "--querier", querier)
        assert code == 0 and json.loads(out) == {"waiting": [], "total": 0}
        code, out, _ = run(
            capsys, "exchange", "waiting", "--data-dir", str(cli_dir), "--querier", querier, "--collect"
        )
        assert code == 0 and json.loads(out) == {
            "waiting": [],
            "total": 0,
            "collected": 0,
            "collect_failed": [],
        }
    code, _, err = run(capsys, "exchange", "waiting", "--data-dir", str(cli_dir), "--querier", "network")
    assert code != 0 and "makes no queries" in err


def test_bad_input_is_reported_without_the_number(cli_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["exchange", "query", "--data-dir", str(cli_dir), "--querier", "131041", "--provider", "131016",
            "--affair", "child-allowance", "--info", "地方税関係情報"]  # fmt: skip
    code, out, err = run(capsys, *base, "--my-number", "123456789012")
    assert code != 0 and "123456789012" not in out + err and "check digit" in err
    code, _, err = run(
        capsys, *[a if a != "131041" else "999999" for a in base], "--my-number", "123456789018"
    )
    assert code == 2 and "no organisation" in err


def test_an_operator_edit_of_the_table_takes_effect(
    cli_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = cli_dir / "linkage" / "legal-table.json"
    table = json.loads(path.read_text(encoding="utf-8"))
    original = path.read_text(encoding="utf-8")
    table["rows"] = [r for r in table["rows"] if r["id"] != "child-allowance"]
    path.write_text(json.dumps(table, ensure_ascii=False), encoding="utf-8")
    try:
        first = cli_args(scenarios(cli_dir)[0]["command"], cli_dir)
        code, out, err = run(capsys, *first)
        assert code == 1 and "no row 'child-allowance'" in err
        path.write_text("{ not json", encoding="utf-8")
        code, _, err = run(capsys, "exchange", "table", "--data-dir", str(cli_dir))
        assert code == 2 and "not valid JSON" in err
    finally:
        path.write_text(original, encoding="utf-8")
