"""`kojinbango exchange rotate-key`: a querier's encryption key replaced. Answers sealed to the old key
— stored as evidence — still open; new answers are sealed to the new key; without the retired key
the old ones no longer open, while their signatures still verify."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from exchange_helpers import cli_args, scenarios
from joserfc.util import json_b64decode

from kojinbango.cli import main

pytestmark = pytest.mark.slow


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
    code = main(list(args))
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    return code, json.loads(lines[-1]) if lines else None, out.err


def _kid(d: Path, exchange_id: str) -> str:
    """The key id the stored answer's seal names (its protected header)."""
    with sqlite3.connect(d / "nenkin.db") as conn:
        (doc,) = conn.execute(
            "SELECT document FROM agency_answers WHERE exchange_id = ?", (exchange_id,)
        ).fetchone()
    payload = json.loads(doc)["payload"]
    token = payload.get("sealed_key") or payload["sealed_data"]
    return str(json_b64decode(token.split(".")[0].encode())["kid"])


def test_a_rotated_key_opens_new_answers_and_the_retired_one_the_old(
    linkage_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kojinbango.common.pki import load_key
    from kojinbango.common.sealing import key_id

    d = tmp_path / "nation"
    shutil.copytree(linkage_dir, d)
    query = cli_args(next(s["command"] for s in scenarios(d) if "--querier nenkin" in s["command"]
                          and "地方税関係情報" in s["command"]), d)  # fmt: skip
    code, before, _ = run(capsys, *query)
    assert code == 0 and before["status"] == "answered" and before["data"]
    old_kid = _kid(d, before["exchange_id"])
    topo_before = json.loads((d / "topology.json").read_text())
    old_key = next(o for o in topo_before["organisations"] if o["id"] == "nenkin")["encryption_key"]
    assert old_kid == key_id("nenkin", load_key(d / old_key))

    code, rotated, err = run(capsys, "exchange", "rotate-key", "--data-dir", str(d), "--org", "nenkin")
    assert code == 0, err
    assert rotated["organisation"] == "nenkin" and rotated["retired_encryption_keys"] == [old_key]
    assert rotated["encryption_key"] != old_key and (d / rotated["encryption_key"]).exists()
    assert rotated["key_id"] == key_id("nenkin", load_key(d / rotated["encryption_key"])) != old_kid
    saved = next(
        o for o in json.loads((d / "topology.json").read_text())["organisations"] if o["id"] == "nenkin"
    )
    assert saved["encryption_key"] == rotated["encryption_key"]
    assert saved["retired_encryption_keys"] == [old_key]

    # a new answer is sealed to the new key (the provider's intermediate server read the new
    # certificate when it started) and opens
    code, after, _ = run(capsys, *query)
    assert code == 0 and after["status"] == "answered" and after["data"] == before["data"]
    assert _kid(d, after["exchange_id"]) == rotated["key_id"]
    # the answer stored before the rotation still opens, with the retired key
    result = ["exchange", "result", "--data-dir", str(d), "--querier", "nenkin"]
    code, old, _ = run(capsys, *result, "--id", before["exchange_id"])
    assert code == 0 and old["data"] == before["data"] and old["signature_valid"] is True

    # an operator who drops the retired key loses what was sealed to it, not its evidence
    topo = json.loads((d / "topology.json").read_text())
    next(o for o in topo["organisations"] if o["id"] == "nenkin")["retired_encryption_keys"] = []
    (d / "topology.json").write_text(json.dumps(topo, ensure_ascii=False))
    code, old, _ = run(capsys, *result, "--id", before["exchange_id"])
    assert code == 0 and old["data"] is None and old["signature_valid"] is True
    code, new, _ = run(capsys, *result, "--id", after["exchange_id"])
    assert code == 0 and new["data"] == before["data"]


def test_rotation_refuses_what_it_cannot_do_and_changes_nothing(
    linkage_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "nation"
    shutil.copytree(linkage_dir, d)
    topology = (d / "topology.json").read_text()
    rotate = ["exchange", "rotate-key", "--data-dir", str(d)]
    code, _, err = run(capsys, *rotate, "--org", "jlis")
    assert code == 2 and "not a municipality or an agency" in err
    code, _, err = run(capsys, *rotate, "--org", "999999")
    assert code == 2 and "999999" in err
    (d / "pki" / "ca.key").rename(d / "ca.key.elsewhere")  # the CA's key kept on another machine
    code, _, err = run(capsys, *rotate, "--org", "131041")
    assert code == 2 and "deployment CA's key is not in" in err
    (d / "ca.key.elsewhere").rename(d / "pki" / "ca.key")
    (d / "pki" / "m131041.enc.key").unlink()  # the key it would retire is not on this machine
    code, _, err = run(capsys, *rotate, "--org", "131041")
    assert code == 2 and "m131041's encryption key pki/m131041.enc.key is not on this machine" in err
    assert (d / "topology.json").read_text() == topology
    assert sorted(p.name for p in (d / "pki").glob("m131041.enc.*")) == ["m131041.enc.pem"]


def test_a_rotated_key_is_taken_up_by_running_services_without_a_restart(
    linkage_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The intermediate server reads a querier's certificate again every RECIPIENT_SECONDS and then
    seals to the new key; the querier's service, given a seal none of its keys opens, reads its keys
    again. Neither restarts. A topology that cannot be read leaves the key in use as it was."""
    from exchange_helpers import args_of

    from kojinbango.intermediate import service as intermediate_service
    from kojinbango.nation import running

    d = tmp_path / "nation"
    shutil.copytree(linkage_dir, d)
    a = args_of(next(s["command"] for s in scenarios(d) if "--querier nenkin" in s["command"]
                     and "地方税関係情報" in s["command"]))  # fmt: skip
    with running(d) as nation:
        agency = nation.runtimes["nenkin"].services["agency"]

        def ask() -> dict[str, Any]:
            answer = agency.query(a["my-number"], a["provider"], a["affair"], a["info"], "照会 担当")
            assert answer["status"] == "answered" and answer["signature_valid"] is True and answer["data"]
            return answer

        old_kid = _kid(d, ask()["exchange_id"])
        code, rotated, err = run(capsys, "exchange", "rotate-key", "--data-dir", str(d), "--org", "nenkin")
        assert code == 0, err
        assert _kid(d, ask()["exchange_id"]) == old_kid  # read within the minute: still the old key
        monkeypatch.setattr(intermediate_service, "RECIPIENT_SECONDS", 0.0)  # the minute has passed
        assert _kid(d, ask()["exchange_id"]) == rotated["key_id"]  # sealed to the new key...
        assert len(agency.opener._keys) == 2  # ...which the agency read from its topology to open it
        good = (d / "topology.json").read_text()
        (d / "topology.json").write_text("{")  # being edited
        assert _kid(d, ask()["exchange_id"]) == rotated["key_id"]  # the key it had
        assert "nenkin's encryption certificate could not be read again" in caplog.text
        (d / "topology.json").write_text(good)
