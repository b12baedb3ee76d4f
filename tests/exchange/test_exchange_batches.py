"""Queries that arrive together travel together (common.batching) — and each keeps its own outcome,
its own 処理通番 and its three provision records."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from exchange_helpers import A, B, concurrent_pension_queries, concurrent_signed_posts
from sqlalchemy import event, select

from kojinbango import linkage_audit
from kojinbango.agency.models import AgencyAnswer
from kojinbango.common import documents
from kojinbango.common.db import Database
from kojinbango.common.linkage import answer_data
from kojinbango.common.sealing import Opener
from kojinbango.common.signing import sign_request
from kojinbango.domain.jst import today_jst
from kojinbango.intermediate.models import FugoLink
from kojinbango.nation import Nation


def test_concurrent_queries_go_in_batches_and_each_is_answered_and_recorded_three_times(
    nation: Nation,
) -> None:
    agency = nation.runtime("agency").services["agency"]
    before = sum(c.items - c.batches for c in agency._asks.all())
    answers = concurrent_pension_queries(nation, 24)
    assert {a["status"] for a in answers} == {"answered"}
    assert all(a["signature_valid"] is True and a["data"] for a in answers)
    ids = [a["exchange_id"] for a in answers]
    assert len(set(ids)) == 24  # an exchange each, never one shared
    # some of them went to the network together (items beyond one per batch)
    assert sum(c.items - c.batches for c in agency._asks.all()) > before
    for exchange_id in ids:
        audit = linkage_audit.three_records(nation.topology, exchange_id)
        assert audit["agree"], audit
    # the provider's intermediate server signed a batch's answers together (one signature), and
    # each stored answer is still evidence on its own: it verifies alone, later
    with agency.db.transaction() as s:
        stored = list(s.scalars(select(AgencyAnswer.document).where(AgencyAnswer.exchange_id.in_(ids))))
    assert len(stored) == 24
    assert any(doc.get("batch", {}).get("size", 1) > 1 for doc in stored)
    documents._HEADS = documents._Heads()  # nothing remembered from the exchange itself
    assert all(agency.verify_stored(e)["signature_valid"] is True for e in ids)
    # ...and sealed the information of a batch's answers to one querier with one key agreement
    # (common.sealing: batch form); each stored answer still opens alone, with the querier's key
    sealed = [doc["payload"] for doc in stored if "sealed_key" in doc["payload"]]
    assert sealed and all(p["sealed_for"] == "nenkin" and "data" not in p for p in sealed)
    fresh = Opener(*nation.topology.opening_keys("nenkin"))  # no batch key remembered
    given = {a["exchange_id"]: a["data"] for a in answers}
    for payload in sealed:
        assert answer_data(payload, fresh) == given[payload["exchange_id"]]


def test_a_batch_writes_its_new_rows_with_one_statement_per_table(nation: Nation) -> None:
    """The querier's side of a batch: its queries' rows and the agency's business rows go in one
    multi-row statement per table, not a statement per query (SQLite included, whose ordered
    RETURNING would fall back to one statement per row)."""
    agency = nation.runtime("agency").services["agency"]
    inserts: dict[str, int] = {"im_queries": 0, "agency_answers": 0}

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        for table in inserts:
            if statement.startswith(f"INSERT INTO {table} "):
                inserts[table] += 1

    batches = sum(c.batches for c in agency._asks.all())
    event.listen(agency.db.engine, "before_cursor_execute", count)
    try:
        answers = concurrent_pension_queries(nation, 24)
    finally:
        event.remove(agency.db.engine, "before_cursor_execute", count)
    assert {a["status"] for a in answers} == {"answered"}
    batches = sum(c.batches for c in agency._asks.all()) - batches
    assert batches < 24  # some went together
    assert inserts == {"im_queries": batches, "agency_answers": batches}


def _signed_post(nation: Nation, signer: str, to: str, path: str, payload: Any) -> httpx.Response:
    raw = json.dumps(payload, ensure_ascii=False).encode()
    headers = sign_request(nation.topology.credentials(signer), "POST", path, "", raw, to)
    headers["content-type"] = "application/json"
    return httpx.post(nation.urls[to] + path, content=raw, headers=headers, timeout=30)


def test_a_batch_at_the_if_gives_each_item_its_own_outcome(nation: Nation) -> None:
    """One good query between refusals of every kind: the good one is answered, each refusal keeps
    its own status and reason, none sinks the others."""
    db = Database(nation.topology.database_url("intermediate"))
    try:
        with db.transaction() as s:
            fugo = s.scalar(select(FugoLink.fugo).where(FugoLink.tenant == B).limit(1))
    finally:
        db.dispose()
    assert fugo is not None
    base = {"provider": A, "info": "地方税関係情報", "wait": True}
    items = [
        {**base, "querier": B, "request_id": "RQbatch-good-01", "fugo": fugo, "affair": "child-allowance"},
        {
            **base,
            "querier": "nenkin",
            "request_id": "RQbatch-tenant-1",
            "fugo": fugo,
            "affair": "pension-exemption",
        },
        {
            **base,
            "querier": B,
            "request_id": "RQbatch-fugo-001",
            "fugo": "0" * 32,
            "affair": "child-allowance",
        },
        {**base, "querier": B, "request_id": "RQbatch-norow-01", "fugo": fugo, "affair": "pension-exemption"},
    ]
    r = _signed_post(nation, "intermediate", "network", "/api/if/queries/batch", {"items": items})
    assert r.status_code == 200, r.text
    good, tenant, bad_fugo, no_row = r.json()["results"]
    assert good["ok"]["status"] in ("answered", "not_held") and good["ok"]["exchange_id"]
    assert tenant["error"]["status"] == 401 and "does not serve" in tenant["error"]["detail"]
    assert bad_fugo["error"]["status"] == 422 and "符号" in bad_fugo["error"]["detail"]
    assert no_row["ok"]["status"] == "refused" and "legal table" in no_row["ok"]["reason"]
    assert good["ok"]["exchange_id"] != no_row["ok"]["exchange_id"]
    # the same batch again: the same exchanges (a request id opens one exchange, once)
    again = _signed_post(nation, "intermediate", "network", "/api/if/queries/batch", {"items": items})
    assert again.json()["results"][0]["ok"]["exchange_id"] == good["ok"]["exchange_id"]
    assert again.json()["results"][3]["ok"]["exchange_id"] == no_row["ok"]["exchange_id"]


def test_batch_endpoints_refuse_callers_and_shapes_they_do_not_take(nation: Nation) -> None:
    item = {"exchange_id": "EX20250101-00000001", "tenant": A, "fugo": "x", "querier": B, "affair": "a",
            "info": "地方税関係情報", "requested_at": "2025-01-01T00:00:00Z"}  # fmt: skip
    # only the network's IF delivers queries to an intermediate server (not even one of its tenants)
    r = _signed_post(nation, B, "intermediate", "/api/if/provide/batch", {"items": [item]})
    assert r.status_code == 401 and "IF" in r.json()["detail"]
    # an empty batch, or one too large, is a clear 422
    r = _signed_post(nation, "intermediate", "network", "/api/if/queries/batch", {"items": []})
    assert r.status_code == 422 and "items" in json.dumps(r.json()["detail"])
    r = _signed_post(nation, "network", "intermediate", "/api/if/provide/batch", {"items": [item] * 257})
    assert r.status_code == 422 and "items" in json.dumps(r.json()["detail"])
    # a municipality may not use the IF system's batch door either
    r = _signed_post(nation, B, "network", "/api/if/queries/batch", {"items": [item]})
    assert r.status_code in (401, 422)


def test_a_provision_that_fails_in_a_batch_fails_alone(nation: Nation) -> None:
    """The batch's transaction fails with it; each provision is then made alone, so the others are
    answered and written once, and the failed one has written nothing."""
    service = nation.runtime("intermediate").services["intermediate"]
    with service.db.transaction() as s:
        fugos = list(s.scalars(select(FugoLink.fugo).where(FugoLink.tenant == A).limit(2)))
    base = {"tenant": A, "querier": B, "querier_name": "", "affair": "child-allowance", "info": "地方税関係情報",
            "requested_at": "2026-01-05T00:00:00.000Z"}  # fmt: skip
    good = [{**base, "exchange_id": f"EX20260105-9900000{i}", "fugo": f} for i, f in enumerate(fugos)]
    broken = {
        k: v for k, v in {**good[0], "exchange_id": "EX20260105-99000009"}.items() if k != "requested_at"
    }
    outcomes = service.provide_many([good[0], broken, good[1]])
    assert isinstance(outcomes[1], KeyError)
    assert [o["payload"]["exchange_id"] for o in (outcomes[0], outcomes[2])] == [
        g["exchange_id"] for g in good
    ]
    assert service.records(A, exchange_id="EX20260105-99000009") == []
    assert len(service.records(A, exchange_id=good[1]["exchange_id"])) == 1
    # delivered again (the network retrying): the same signed documents, nothing written twice
    again = service.provide_many(good)
    assert again == [outcomes[0], outcomes[2]]
    assert len(service.records(A, exchange_id=good[0]["exchange_id"])) == 1


def test_a_municipalitys_queries_at_once_go_in_batches_through_the_joint_server(nation: Nation) -> None:
    """The tenant interface of the joint intermediate server batches too (the municipalities' path)."""
    service = nation.runtime("intermediate").services["intermediate"]
    with service.db.transaction() as s:
        number = s.scalar(select(FugoLink.integrated_number).where(FugoLink.tenant == B).limit(1))
    bodies = [{"request_id": f"RQtenant-batch-{k:03d}", "integrated_number": number, "provider": A,
               "affair": "child-allowance", "info": "地方税関係情報"} for k in range(16)]  # fmt: skip
    before = sum(c.items - c.batches for c in service._queries.all())
    states = concurrent_signed_posts(nation, B, "intermediate", "/api/tenant/queries", bodies)
    assert {s["status"] for s in states} <= {"answered", "not_held"}
    assert len({s["exchange_id"] for s in states}) == 16
    assert sum(c.items - c.batches for c in service._queries.all()) > before
    assert all(linkage_audit.three_records(nation.topology, s["exchange_id"])["agree"] for s in states)


def test_an_older_network_without_the_batch_route_gets_the_queries_one_by_one(nation: Nation) -> None:
    """Organisations are upgraded one at a time: a batch to a network that has no batch route yet
    (its real 404) is sent again as single queries, and every one is answered."""
    im = nation.runtime("agency").services["intermediate"]
    real = im.acall
    refused: list[str] = []

    async def older(org: str, method: str, path: str, payload: Any) -> Any:
        if path.endswith("/batch"):  # the route as an older network lacks it
            refused.append(path)
            path = path + "-not-yet"
        return await real(org, method, path, payload)

    im.acall = older
    try:
        answers = concurrent_pension_queries(nation, 16)
    finally:
        im.acall = real
    assert refused  # batches were tried and met the network's own 404
    assert {a["status"] for a in answers} == {"answered"} and all(a["signature_valid"] for a in answers)
    assert all(linkage_audit.three_records(nation.topology, a["exchange_id"])["agree"] for a in answers)


def test_first_queries_about_a_new_person_at_once_obtain_one_fugo(nation: Nation) -> None:
    """Queries about someone the agency has no 符号 for yet, all at once: the first obtains it
    through J-LIS, the others wait for it — each answered, one 符号 request (not one each)."""
    from kojinbango.agency.models import AgencyFugo, InsuredPerson
    from kojinbango.municipality.addressee.models import Addressee
    from kojinbango.municipality.linkage.models import CopyState

    agency = nation.runtime("agency").services["agency"]
    with agency.db.transaction() as s:
        known = set(s.scalars(select(InsuredPerson.my_number)))
    with nation.runtimes[A].db.transaction() as s:
        number = next(
            n
            for n in s.scalars(
                select(Addressee.my_number)
                .join(CopyState, CopyState.addressee_id == Addressee.id)
                .where(CopyState.category == "地方税関係情報", Addressee.my_number.is_not(None))
            )
            if n not in known
        )
    query = {
        "my_number": number,
        "provider": "131016",
        "affair": "pension-exemption",
        "info": "地方税関係情報",
    }
    answers = concurrent_signed_posts(nation, "nenkin", "nenkin", "/staff/linkage/api/query", [query] * 24)
    assert [a["status"] for a in answers] == ["answered"] * 24
    assert all(a["signature_valid"] is True for a in answers)
    with agency.db.transaction() as s:
        pid = s.scalar(select(InsuredPerson.id).where(InsuredPerson.my_number == number))
        rows = list(s.scalars(select(AgencyFugo).where(AgencyFugo.person_id == pid)))
    assert len(rows) == 1 and rows[0].delivered_at is not None


def test_a_municipalitys_first_queries_about_a_person_at_once_obtain_one_fugo(nation: Nation) -> None:
    """The same at a municipality: its staff's queries about someone it has no 符号 for yet, all at
    once, make one 符号 request (each would otherwise insert its own and all but one fail)."""

    from kojinbango.demo import births
    from kojinbango.municipality.addressee.models import Addressee
    from kojinbango.municipality.linkage.models import FugoRequest
    from kojinbango.municipality.register.models import Resident

    # a baby born today at B: a number, and no 符号 yet
    born = next(b for b in births(nation, 3, today_jst()) if b["municipality"] == B)
    with nation.runtimes[B].db.transaction() as s:
        number = s.scalar(select(Resident.my_number).where(Resident.id == born["resident_id"]))
    assert number
    query = {"my_number": number, "provider": "131016", "affair": "child-allowance", "info": "地方税関係情報"}
    answers = concurrent_signed_posts(nation, B, B, "/staff/linkage/api/query", [query] * 16)
    assert len({a["status"] for a in answers}) == 1  # the same outcome for all, whatever the provider holds
    with nation.runtimes[B].db.transaction() as s:
        aid = s.scalar(select(Addressee.id).where(Addressee.my_number == number))
        rows = list(s.scalars(select(FugoRequest).where(FugoRequest.addressee_id == aid)))
    assert len(rows) == 1 and rows[0].delivered_at is not None


def test_checked_answers_nobody_waits_for_are_not_kept_forever(
    nation: Nation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer the sweep collects later has no staff request waiting for its check: the agency
    keeps at most CHECKED_KEPT of them (a waiter whose entry went reads the stored answer)."""
    from kojinbango.agency import service as agency_module

    agency = nation.runtime("agency").services["agency"]
    monkeypatch.setattr(agency_module, "CHECKED_KEPT", 5)

    class NoDatabase:
        def execute(self, *_: Any) -> None:
            return None

    states = [
        (agency.org_id, {"request_id": f"later-{i}", "status": "pending", "provider": "131016"})
        for i in range(12)
    ]
    agency._on_results(NoDatabase(), states)
    assert list(agency._checked)[-5:] == [f"later-{i}" for i in range(7, 12)]
    assert len(agency._checked) == 5


def test_the_sweep_reads_open_queries_by_index_and_without_the_write_lock(nation: Nation) -> None:
    """The intermediate server's sweep (every 2 s) looks for queries still unsent or pending. It held
    the database's write lock while it read the whole table by status — 7–21 ms, growing with the
    table, that the event loop's transactions waited for."""
    import threading

    im = nation.runtime("intermediate").services["intermediate"]
    statements: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if "im_queries" in statement:
            statements.append((statement, parameters))

    event.listen(im.db.engine, "before_cursor_execute", keep)
    done = threading.Event()
    try:
        with im.db.write_lock:  # a writer in the middle of its transaction
            worker = threading.Thread(target=lambda: (im.sweep(), done.set()), daemon=True)
            worker.start()
            assert done.wait(10), "the sweep waited for the write lock"
    finally:
        event.remove(im.db.engine, "before_cursor_execute", keep)
    assert statements
    with im.db.engine.connect() as conn:
        for statement, parameters in statements:
            plan = " ".join(
                str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            )
            assert "SCAN im_queries" not in plan, plan


def test_the_exchange_paths_routes_are_answered_by_the_signature_middleware(nation: Nation) -> None:
    """Each hop of the exchange path is answered past FastAPI's routing (``direct_json_route``):
    the agency's staff query, the network's IF and the intermediate servers' provision routes."""
    direct = {
        org: set(nation.runtime(org).app.state.direct_routes) for org in ("agency", "network", "intermediate")
    }
    assert direct["network"] >= {("POST", "/api/if/queries"), ("POST", "/api/if/queries/batch")}
    provide = {("POST", "/api/if/provide"), ("POST", "/api/if/provide/batch")}
    assert direct["intermediate"] >= provide
    assert direct["agency"] >= provide | {("POST", "/staff/linkage/api/query")}
