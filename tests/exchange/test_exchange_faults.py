"""Faults: a provider that is down leaves the query pending and retried; a provider killed mid-exchange
(after it recorded the provision, before the answer left) and started again completes the exchange
once; a restarted network loses nothing; replayed or altered messages are refused."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from exchange_helpers import Services, args_of, scenarios
from sqlalchemy import func, select

from kojinbango import linkage_audit
from kojinbango.common.db import Database
from kojinbango.common.signing import sign_request
from kojinbango.common.topology import Topology
from kojinbango.common.transport import SignedClient
from kojinbango.intermediate.models import Provision, ProvisionRecord
from kojinbango.nation import Nation

SERVED = ("jlis", "network", "intermediate", "nenkin", "m131016", "m131041")


@pytest.fixture()
def services(linkage_dir: Path, tmp_path: Path) -> Iterator[Services]:
    d = tmp_path / "nation"
    shutil.copytree(linkage_dir, d)
    s = Services(d)
    try:
        yield s
    finally:
        s.stop_all()


def staff(services: Services, org: str, path: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The organisation's own staff system: its internal interface, signed with its own key."""
    topo = services.topology
    client = SignedClient(topo.credentials(org), topo.trust_store(), {org: services.url(org)}, timeout=60)
    try:
        return dict(client.call(org, "POST", "/staff/linkage/api" + path, payload))
    finally:
        client.close()


def wait_answered(services: Services, exchange_id: str, seconds: float = 60) -> dict[str, Any]:
    deadline = time.time() + seconds
    while True:
        out = staff(services, "nenkin", "/result", {"exchange_id": exchange_id})
        if out["status"] not in ("pending", "unsent") or time.time() > deadline:
            return out
        time.sleep(0.5)


def provider_records(d: Path, exchange_id: str) -> int:
    db = Database(f"sqlite:///{d}/intermediate.db")
    try:
        with db.transaction() as s:
            return int(
                s.scalar(
                    select(func.count())
                    .select_from(ProvisionRecord)
                    .where(ProvisionRecord.exchange_id == exchange_id)
                )
                or 0
            )
    finally:
        db.dispose()


@pytest.mark.slow
def test_provider_killed_mid_exchange_then_started_again(services: Services) -> None:
    a = args_of(
        scenarios(services.d)[1]["command"]
    )  # 日本年金機構 asks A (answered by the intermediate server)
    for org in SERVED:
        services.start(
            org, {"KOJINBANGO_FAILPOINT": "crash_after_provide"} if org == "intermediate" else None
        )
    query = {"my_number": a["my-number"], "provider": a["provider"], "affair": a["affair"], "info": a["info"],
             "wait_seconds": 1}  # fmt: skip
    first = staff(services, "nenkin", "/query", query)
    assert first["status"] == "pending", first  # the provider died after recording its provision
    ex_id = first["exchange_id"]
    assert services.wait_exit("intermediate") == 9
    db = Database(f"sqlite:///{services.d}/intermediate.db")
    with db.transaction() as s:
        assert s.get(Provision, ("m131016", ex_id)) is not None
    db.dispose()
    # the querier sees it pending; then the network itself is restarted while it waits
    assert staff(services, "nenkin", "/result", {"exchange_id": ex_id})["status"] == "pending"
    services.kill("network")
    services.start("network")
    services.start("intermediate")  # back, without the fault
    done = wait_answered(services, ex_id)
    assert done["status"] == "answered" and done["signature_valid"] is True, done
    assert provider_records(services.d, ex_id) == 1  # provided once, answered again on redelivery
    services.stop_all()
    result = linkage_audit.three_records(Topology.load(services.d / "topology.json"), ex_id)
    assert result["agree"], json.dumps(result, ensure_ascii=False)
    entry = result["exchanges"][0]["records"]
    assert (
        entry["network"]["outcome"]
        == entry["querier"]["outcome"]
        == entry["provider"]["outcome"]
        == "provided"
    )


@pytest.mark.slow
def test_provider_down_leaves_the_query_pending_and_retried(services: Services) -> None:
    a = args_of(scenarios(services.d)[1]["command"])
    for org in SERVED:
        if org != "intermediate":
            services.start(org)
    query = {"my_number": a["my-number"], "provider": a["provider"], "affair": a["affair"], "info": a["info"],
             "wait_seconds": 1}  # fmt: skip
    first = staff(services, "nenkin", "/query", query)
    assert first["status"] == "pending"
    time.sleep(2)
    assert staff(services, "nenkin", "/result", {"exchange_id": first["exchange_id"]})["status"] == "pending"
    # the linkage staff's list of what still waits: the query, by 処理通番, never with the number
    waiting = staff(services, "nenkin", "/waiting", {})
    assert [(w["exchange_id"], w["status"]) for w in waiting["waiting"]] == [
        (first["exchange_id"], "pending")
    ]
    assert a["my-number"] not in json.dumps(waiting, ensure_ascii=False)
    asked = staff(
        services, "nenkin", "/waiting", {"collect": True}
    )  # asked again: the provider is still down
    assert asked["collected"] == 0 and [w["exchange_id"] for w in asked["waiting"]] == [first["exchange_id"]]
    # the network operator's view: one exchange waiting for A, delivery tried and failed
    topo = Topology.load(services.d / "topology.json")
    deadline = time.time() + 30
    while not (status := linkage_audit.network_status(topo))["pending_by_provider"][0]["last_error"]:
        assert time.time() < deadline, status
        time.sleep(0.5)
    (waiting_for,) = status["pending_by_provider"]
    assert waiting_for["provider"] == a["provider"] and waiting_for["pending"] == 1
    assert waiting_for["most_attempts"] >= 1 and waiting_for["next_attempt_at"]
    assert a["my-number"] not in json.dumps(status, ensure_ascii=False)
    services.start("intermediate")
    done = wait_answered(services, first["exchange_id"])
    assert done["status"] == "answered", done
    assert staff(services, "nenkin", "/waiting", {"collect": True}) == {
        "waiting": [],
        "total": 0,
        "collected": 0,
        "collect_failed": [],
    }
    assert linkage_audit.network_status(topo)["pending_by_provider"] == []
    services.stop_all()
    assert linkage_audit.three_records(Topology.load(services.d / "topology.json"), first["exchange_id"])[
        "agree"
    ]


def test_replayed_or_altered_messages_are_refused(nation: Nation) -> None:
    """A query to the network's IF, signed by the intermediate server: replay and alteration get 401."""
    topo = nation.topology
    creds = topo.credentials("intermediate")
    body = json.dumps({"querier": "m131041", "request_id": "RQreplay0001", "fugo": "0" * 32, "provider": "m131016",
                       "affair": "child-allowance", "info": "地方税関係情報"}).encode()  # fmt: skip
    url = nation.urls["network"] + "/api/if/queries"
    headers = sign_request(creds, "POST", "/api/if/queries", "", body, "network")
    headers["content-type"] = "application/json"
    first = httpx.post(url, content=body, headers=headers)
    assert first.status_code == 422  # a well-signed request with a 符号 that is not B's: a clear refusal
    assert "符号" in first.json()["detail"]
    replay = httpx.post(url, content=body, headers=headers)
    assert replay.status_code == 401 and "replayed" in replay.json()["detail"]
    headers2 = sign_request(creds, "POST", "/api/if/queries", "", body, "network")
    headers2["content-type"] = "application/json"
    altered = httpx.post(url, content=body.replace(b"m131016", b"m131041"), headers=headers2)
    assert altered.status_code == 401 and "Content-Digest" in altered.json()["detail"]
    # a municipality may not talk to the IF system directly
    mcreds = topo.credentials("m131041")
    h3 = sign_request(mcreds, "POST", "/api/if/queries", "", body, "network")
    h3["content-type"] = "application/json"
    assert httpx.post(url, content=body, headers=h3).status_code == 401
