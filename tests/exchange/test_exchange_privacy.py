"""The 個人番号 never reaches the network or the intermediate server: not on the wire, not in their
database files (nor the 住民票コード in the network's)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from exchange_helpers import ask, querier_service, scenarios
from sqlalchemy import delete, select

import kojinbango.nation as nation_module
from kojinbango.common.db import Database
from kojinbango.common.sealing import Opener, SealError
from kojinbango.jlis.models import IdentityRecord, IssuedNumber
from kojinbango.municipality.linkage.models import CopyState, FugoRequest
from kojinbango.nation import running

DIGITS = re.compile(rb"(?<![0-9])[0-9]{11,12}(?![0-9])")
WATCHED = ("network", "intermediate")


class Recorder:
    """An ASGI wrapper that keeps every request body an organisation receives."""

    def __init__(self, app: Any, bodies: list[bytes]):
        self.app, self.bodies = app, bodies

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def recv() -> Any:
            message = await receive()
            if message.get("type") == "http.request":
                self.bodies.append(message.get("body", b""))
            return message

        await self.app(scope, recv, send)


def identifiers(d: Path) -> tuple[set[bytes], set[bytes]]:
    db = Database(f"sqlite:///{d}/jlis.db")
    try:
        with db.transaction() as s:
            numbers = {n.encode() for n in s.scalars(select(IssuedNumber.my_number))}
            codes = {c.encode() for c in s.scalars(select(IdentityRecord.resident_code))}
    finally:
        db.dispose()
    return numbers, codes


def found_in(data: bytes, wanted: set[bytes]) -> set[bytes]:
    return {m for m in DIGITS.findall(data) if m in wanted}


def test_no_number_on_the_wire_or_in_their_databases(
    linkage_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = tmp_path / "nation"
    shutil.copytree(linkage_dir, d)
    bodies: dict[str, list[bytes]] = {k: [] for k in WATCHED}
    real_build = nation_module.build

    def build(topology: Any, org_id: str, *args: Any, **kwargs: Any) -> Any:
        rt = real_build(topology, org_id, *args, **kwargs)
        if org_id in WATCHED:
            rt.app = Recorder(rt.app, bodies[org_id])
        return rt

    monkeypatch.setattr(nation_module, "build", build)
    with running(d) as nation:
        for rt in nation.municipalities():
            with rt.db.transaction() as s:  # ask again for every 符号 and send every 副本 again
                s.execute(delete(FugoRequest))
                s.execute(delete(CopyState))
            linkage = rt.services["linkage"]
            linkage.ensure_fugo()
            linkage.refresh(None, full=True)
        for s in scenarios(d):
            ask(nation, s["command"])
    numbers, codes = identifiers(d)
    assert len(numbers) > 300
    wire = b"".join(bodies["network"] + bodies["intermediate"])
    assert len(bodies["network"]) > 3 and len(bodies["intermediate"]) > 10
    assert not found_in(wire, numbers), "a 個人番号 reached the network or the intermediate server"
    for org in WATCHED:
        files = [p for p in d.iterdir() if p.name.startswith(f"{org}.db")]
        assert files
        data = b"".join(p.read_bytes() for p in files)
        assert not found_in(data, numbers), f"a 個人番号 is in {org}'s database"
    network_data = b"".join(p.read_bytes() for p in d.iterdir() if p.name.startswith("network.db"))
    assert not found_in(network_data, codes), "a 住民票コード is in the network's database"
    # the scan itself works: the municipality's own database does hold numbers
    assert found_in(b"".join(p.read_bytes() for p in d.iterdir() if p.name.startswith("m131016.db")), numbers)


def test_the_provided_information_is_sealed_to_the_querier(linkage_dir: Path, tmp_path: Path) -> None:
    """The provider seals what it provides to the querier's encryption certificate: the querier reads
    it, while the network (which keeps the answer) and the querier's intermediate server hold only
    ciphertext, and another querier cannot open it."""
    d = tmp_path / "nation"
    shutil.copytree(linkage_dir, d)
    with running(d) as nation:
        answer = ask(nation, scenarios(d)[0]["command"])  # B asks A for 地方税関係情報
        topology = nation.topology
    assert answer["status"] == "answered" and answer["signature_valid"] is True
    assessments = answer["data"]["assessments"]
    assert assessments and all("tax_amount" in a for a in assessments)
    stored = {}
    for org, sql in (("network", "SELECT answer FROM exchanges WHERE exchange_id = ?"),
                     ("intermediate", "SELECT answer FROM im_queries WHERE exchange_id = ?")):  # fmt: skip
        db = Database(f"sqlite:///{d}/{org}.db")
        try:
            with db.engine.connect() as conn:
                (doc,) = conn.exec_driver_sql(sql, (answer["exchange_id"],)).one()
        finally:
            db.dispose()
        stored[org] = json.loads(doc)["payload"]
    payload = stored["network"]
    assert stored["intermediate"] == payload  # the querier's intermediate server keeps the same document
    assert "data" not in payload and payload["sealed_for"] == "m131041" and payload["held"] is True
    network_files = b"".join(p.read_bytes() for p in d.iterdir() if p.name.startswith("network.db"))
    assert payload["sealed_data"].encode() in network_files and b"tax_amount" not in network_files
    keys = topology.opening_keys("nenkin")
    assert keys
    with pytest.raises(SealError):
        Opener(*keys).open(payload["sealed_data"])


def test_an_older_deployment_gets_encryption_certificates_and_answers_before_them_still_read(
    linkage_dir: Path, tmp_path: Path
) -> None:
    """A deployment made before answers were sealed: its queriers have no encryption certificate, so
    answers to them travel in clear (and still verify); the next command that prepares the linkage
    organisations issues the certificates, and from then on answers are sealed."""
    from kojinbango.common.topology import Topology
    from kojinbango.nation import add_linkage_organisations

    d = tmp_path / "nation"
    shutil.copytree(linkage_dir, d)
    topo = Topology.load(d / "topology.json")
    for org in topo.organisations.values():
        org.encryption_certificate = org.encryption_key = None
    topo.save()
    for p in (d / "pki").glob("*.enc.*"):
        p.unlink()
    with running(d) as nation:
        before = ask(nation, scenarios(d)[0]["command"])
    assert before["signature_valid"] is True and before["data"]["assessments"]
    upgraded = add_linkage_organisations(Topology.load(d / "topology.json"))
    queriers = {o.id for o in upgraded.organisations.values() if o.kind in ("municipality", "agency")}
    assert {o.id for o in upgraded.organisations.values() if o.encryption_certificate} == queriers
    assert all((d / "pki" / f"{q}.enc.pem").exists() for q in queriers)
    with running(d) as nation:
        after = ask(nation, scenarios(d)[0]["command"])
        stored = querier_service(nation, "131041").answers()
    assert after["signature_valid"] is True and after["data"] == before["data"]
    by_id = {a["exchange_id"]: a for a in stored}
    assert by_id[before["exchange_id"]]["data"] == before["data"]  # kept in clear, still shown
    assert by_id[after["exchange_id"]]["data"] == after["data"]  # opened from its seal


def test_the_network_erases_an_answer_a_week_after_it_was_collected(
    linkage_dir: Path, tmp_path: Path
) -> None:
    """The network relays answers, it does not keep them: ``answer_retention_days`` after the querier
    collected one, the document is erased; the exchange, its provision record and the querier's own
    copy stay."""
    import datetime as dt

    from kojinbango.domain.clock import utc_now as now

    d = tmp_path / "nation"
    shutil.copytree(linkage_dir, d)
    with running(d) as nation:
        answer = ask(nation, scenarios(d)[0]["command"])  # collected at once (the synchronous path)
        core = nation.runtime("network").services["core"]
        log_size = core.log.size
        assert core.purge_answers() == 0  # nothing is that old yet
        assert core.purge_answers(now() + dt.timedelta(days=core.settings.answer_retention_days + 1)) >= 1
        state = core.result("m131041", answer["exchange_id"])
        stored = {a["exchange_id"]: a for a in querier_service(nation, "131041").answers()}
        assert core.log.size == log_size
    assert state["status"] == "answered" and "answer" not in state and state["log_index"] is not None
    assert stored[answer["exchange_id"]]["data"] == answer["data"]  # the querier's copy, still opened
    network_files = b"".join(p.read_bytes() for p in d.iterdir() if p.name.startswith("network.db"))
    assert answer["exchange_id"].encode() in network_files
