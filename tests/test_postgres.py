"""The same organisations on PostgreSQL: the whole nation, and one organisation served alone."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from kojinbango import demo
from kojinbango.common.signing import sign_request
from kojinbango.common.topology import Topology
from kojinbango.domain.jst import today_jst
from kojinbango.nation import create_deployment, init_nation, intro, running

pytestmark = pytest.mark.postgres


def test_nation_on_postgresql(pg_database, tmp_path: Path) -> None:
    d = tmp_path / "pg"
    topo = create_deployment(d)
    for org in topo.organisations.values():
        org.database_url = pg_database(org.id)
    topo.save()
    init_nation(d, 300, seed=5)
    today = today_jst()
    with running(d) as nation:
        assert {rt.db.engine.dialect.name for rt in nation.runtimes.values()} == {"postgresql"}
        intro(nation)
        demo.births(nation, 5, today)
        demo.move(nation, 5, today)
        for rt in nation.municipalities():
            nation.register(rt.org_id).push()
        munis, totals = demo.check_consistency(nation)
    assert totals["errors"] == []
    assert all(m["residents"] == m["numbered"] for m in munis)
    assert totals["numbers_issued"] == sum(m["residents"] for m in munis)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_one_organisation_alone(pg_database, tmp_path: Path) -> None:
    d = tmp_path / "alone"
    topo = create_deployment(d)
    port = _free_port()
    topo.organisations["jlis"].base_url = f"http://127.0.0.1:{port}"
    topo.save()
    url = pg_database("jlis_alone")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kojinbango.cli",
            "serve",
            "jlis",
            "--topology",
            str(d / "topology.json"),
            "--database-url",
            url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(150):
            try:
                if httpx.get(base + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail(
                "the J-LIS service did not start: " + proc.stderr.read1().decode() if proc.stderr else ""
            )
        assert (
            httpx.post(base + "/api/code-bundles", json={"request_id": "alone-00001", "count": 3}).status_code
            == 401
        )
        body = json.dumps({"request_id": "alone-00001", "count": 3}).encode()
        topo = Topology.load(d / "topology.json")
        headers = sign_request(topo.credentials("m131016"), "POST", "/api/code-bundles", "", body, "jlis")
        resp = httpx.post(
            base + "/api/code-bundles", content=body, headers={**headers, "content-type": "application/json"}
        )
        assert resp.status_code == 200 and len(resp.json()["resident_codes"]) == 3
    finally:
        proc.terminate()
        proc.wait(timeout=20)
