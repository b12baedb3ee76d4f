"""Flow 1-1 survives SIGKILL anywhere: one number per resident, none issued twice, notices once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from kojinbango.common.db import Database
from kojinbango.common.topology import Topology
from kojinbango.domain.identifiers import is_valid_my_number
from kojinbango.jlis.models import IssuedNumber
from kojinbango.municipality.register.models import Notice, NoticePrint, PrintRun, Resident

CLI = [sys.executable, "-m", "kojinbango.cli"]


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + args, capture_output=True, text=True, timeout=600, **kw)


def check_invariants(data_dir: Path) -> dict[str, int]:
    topo = Topology.load(data_dir / "topology.json")
    numbers: list[str] = []
    residents = notices = 0
    for org in topo.of_kind("municipality"):
        db = Database(topo.database_url(org.id))
        with db.transaction() as s:
            rows = s.execute(select(Resident.id, Resident.my_number).where(Resident.status == "active")).all()
            assert all(n is not None and is_valid_my_number(n) for _, n in rows), (
                "a resident has no valid number"
            )
            numbers += [n for _, n in rows]
            residents += len(rows)
            per_person = s.execute(
                select(Notice.resident_id, func.count()).group_by(Notice.resident_id)
            ).all()
            assert len(per_person) == len(rows) and all(c == 1 for _, c in per_person), (
                "notices not one per person"
            )
            notices += len(per_person)
            # Every notice printed in a finished run; the first print of each is not a reprint.
            assert s.scalar(select(func.count()).select_from(PrintRun).where(PrintRun.status != "done")) == 0
            firsts = s.execute(
                select(NoticePrint.notice_id, func.min(NoticePrint.id)).group_by(NoticePrint.notice_id)
            ).all()
            assert len(firsts) == len(rows)
            first_ids = [i for _, i in firsts]
            assert not any(s.scalars(select(NoticePrint.reprint).where(NoticePrint.id.in_(first_ids))))
        db.dispose()
    assert len(set(numbers)) == len(numbers), "a number is held by two residents"
    jlis = Database(topo.database_url("jlis"))
    with jlis.transaction() as s:
        issued = s.scalar(select(func.count()).select_from(IssuedNumber))
        distinct_codes = s.scalar(select(func.count(func.distinct(IssuedNumber.resident_code))))
    jlis.dispose()
    assert issued == distinct_codes == residents, "J-LIS issued a number twice or for nobody"
    return {"residents": residents, "notices": notices}


@pytest.mark.slow
def test_sigkill_during_intro_then_rerun(tmp_path: Path) -> None:
    d = tmp_path / "nation"
    r = _run(["init", "--data-dir", str(d), "--residents", "5000", "--seed", "11"])
    assert r.returncode == 0, r.stderr
    kills = 0
    for delay in (2.0, 4.0, 6.5, 9.0):
        proc = subprocess.Popen(
            CLI + ["intro", "--data-dir", str(d)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        time.sleep(delay)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 2, "intro finished too fast to be killed; raise --residents"
    r = _run(["intro", "--data-dir", str(d)])
    assert r.returncode == 0, r.stderr
    assert check_invariants(d) == {"residents": 5000, "notices": 5000}
