"""The holder's commands as a new user runs them: on a data directory with nothing running (each
command starts the nation in-process) and against organisations that are already serving."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from kojinbango.domain.jst import today_jst
from kojinbango.municipality.register.models import Resident
from kojinbango.nation import running

CLI = [sys.executable, "-m", "kojinbango.cli"]


def kb(*args: str) -> tuple[int, dict]:
    r = subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=300)
    assert r.stdout.strip(), r.stderr
    return r.returncode, json.loads(r.stdout.strip().splitlines()[-1])


def _adults(d: Path, org: str, n: int) -> list[tuple[str, int]]:
    from kojinbango.common.db import Database
    from kojinbango.common.topology import Topology

    topo = Topology.load(d / "topology.json")
    db = Database(topo.database_url(org))
    seen: set[int] = set()
    out = []
    with db.transaction() as s:
        for r in s.scalars(
            select(Resident)
            .where(Resident.status == "active", Resident.birth_date < dt.date(1995, 1, 1))
            .order_by(Resident.id)
        ):
            if r.household_id not in seen:
                seen.add(r.household_id)
                out.append((r.resident_code, r.household_id))
            if len(out) == n:
                break
    db.dispose()
    return out


@pytest.fixture()
def nation_dir(small_nation_dir: Path, tmp_path: Path) -> Path:
    d = tmp_path / "nation"
    shutil.copytree(small_nation_dir, d)
    return d


def test_issue_login_lock_suspend_and_move(nation_dir: Path, tmp_path: Path) -> None:
    d = str(nation_dir)
    (code1, _), (code2, hh2) = _adults(nation_dir, "m131016", 2)
    card1, card2 = tmp_path / "one.json", tmp_path / "two.json"
    rc, out = kb(
        "card",
        "issue",
        "--data-dir",
        d,
        "--resident-code",
        code1,
        "--auth-pin",
        "1234",
        "--sign-pin",
        "ABC123",
        "--out",
        str(card1),
    )
    assert rc == 0 and out["card"] == str(card1) and out["certificates"] == ["auth", "sign"]
    assert code1 not in json.dumps(out)  # the 住民票コード is not echoed
    rc, out = kb("portal", "login", "--data-dir", d, "--card", str(card1), "--pin", "1234")
    assert rc == 0 and out["logged_in"] and out["name"]
    name = out["name"]
    for left in (2, 1):
        rc, out = kb("portal", "login", "--data-dir", d, "--card", str(card1), "--pin", "0000")
        assert rc == 1 and out["reason"] == "wrong_pin" and out["tries_left"] == left
    rc, out = kb("portal", "login", "--data-dir", d, "--card", str(card1), "--pin", "0000")
    assert rc == 1 and out["reason"] == "pin_locked"
    rc, out = kb("portal", "login", "--data-dir", d, "--card", str(card1), "--pin", "1234")
    assert rc == 1 and out["reason"] == "pin_locked"

    rc, out = kb("card", "suspend", "--data-dir", d, "--card", str(card1))
    assert rc == 0 and out["status"] == "suspended"
    rc, out = kb(
        "card", "reset-pin", "--data-dir", d, "--card", str(card1), "--which", "auth", "--new-pin", "1234"
    )
    assert rc == 0
    rc, out = kb("portal", "login", "--data-dir", d, "--card", str(card1), "--pin", "1234")
    assert rc == 1 and out["reason"] == "suspended"

    rc, out = kb(
        "card",
        "issue",
        "--data-dir",
        d,
        "--resident-code",
        code2,
        "--auth-pin",
        "4321",
        "--sign-pin",
        "XYZ789",
        "--out",
        str(card2),
    )
    assert rc == 0
    rc, out = kb("bank", "open-account", "--data-dir", d, "--card", str(card2), "--pin", "XYZ789")
    assert rc == 0 and out["opened"] and out["address"]
    with running(nation_dir) as nation:  # 転居 of the second holder's household
        reg = nation.register("m131016")
        reg.move_within(hh2, "1000005", "東京都千代田区丸の内一丁目9番1号", "", today_jst())
        reg.push()
    rc, out = kb("bank", "open-account", "--data-dir", d, "--card", str(card2), "--pin", "XYZ789")
    assert rc == 1 and out["reason"] == "revoked"
    rc, out = kb("portal", "login", "--data-dir", d, "--card", str(card2), "--pin", "4321")
    assert rc == 0 and out["logged_in"] and out["name"] != name


def test_bad_input_is_explained(nation_dir: Path, tmp_path: Path) -> None:
    d = str(nation_dir)
    rc, out = kb(
        "card",
        "issue",
        "--data-dir",
        d,
        "--resident-code",
        "12345678901",
        "--auth-pin",
        "12",
        "--sign-pin",
        "ABC123",
    )
    assert rc == 1 and out["reason"] == "bad_pin_format" and "4 digits" in out["message"]
    rc, out = kb("portal", "login", "--data-dir", d, "--card", str(tmp_path / "none.json"), "--pin", "1234")
    assert rc == 1 and out["reason"] == "not_a_card"


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_commands_use_running_servers(nation_dir: Path, tmp_path: Path) -> None:
    from kojinbango.holder import load_topology

    topo = load_topology(nation_dir)  # adds the portal and the bank to this older data directory
    for org, port in zip(topo.organisations.values(), _free_ports(len(topo.organisations)), strict=True):
        org.base_url = f"http://127.0.0.1:{port}"
    topo.save()
    ((code, _),) = _adults(nation_dir, "m131041", 1)
    card = tmp_path / "c.json"
    with running(nation_dir, fixed_ports=True) as nation:
        rc, out = kb(
            "card",
            "issue",
            "--data-dir",
            str(nation_dir),
            "--resident-code",
            code,
            "--auth-pin",
            "1234",
            "--sign-pin",
            "ABC123",
            "--out",
            str(card),
        )
        assert rc == 0 and out["mode"] == "申請時来庁方式"
        rc, out = kb("portal", "login", "--data-dir", str(nation_dir), "--card", str(card), "--pin", "1234")
        assert rc == 0
        logins = nation.runtimes["portal"].services["portal"].login_counts()  # the running portal saw it
        assert logins["ok"] == 1
