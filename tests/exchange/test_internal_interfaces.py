"""The JSON interfaces the kojinbango commands drive (``/staff/cards/api/…``, ``/staff/linkage/api/…``)
answer only requests signed by the serving organisation itself: unsigned, other organisations' and
replayed requests get 401 before any handler runs; a correctly signed one works and is recorded as
having come through the signed internal interface."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from exchange_helpers import args_of, scenarios
from sqlalchemy import func, select

from kojinbango.common.linkage import org_of_public_id
from kojinbango.common.signing import InternalKey, sign_request, verify_response
from kojinbango.common.transport import INTERNAL_STAFF_MARK, SignedClient
from kojinbango.municipality.linkage.models import LinkageAnswer
from kojinbango.municipality.register.models import Resident
from kojinbango.nation import Nation

FIND = "/staff/cards/api/find"
QUERY = "/staff/linkage/api/query"


def _signed_post(
    nation: Nation, signer: str, target: str, path: str, payload: Any
) -> tuple[httpx.Response, dict]:
    body = json.dumps(payload, ensure_ascii=False).encode()
    headers = sign_request(nation.topology.credentials(signer), "POST", path, "", body, target)
    headers["content-type"] = "application/json"
    resp = httpx.post(nation.urls[target] + path, content=body, headers=headers, timeout=60)
    return resp, headers


def _query(nation: Nation) -> tuple[str, dict[str, Any]]:
    """The municipality asking in the first scenario, and its query (a real 個人番号 in the body)."""
    a = args_of(scenarios(nation.topology.root)[0]["command"])
    querier = org_of_public_id(nation.topology, a["querier"])
    body = {"my_number": a["my-number"], "provider": a["provider"], "affair": a["affair"], "info": a["info"],
            "staff": "照会 担当", "wait_seconds": 30}  # fmt: skip
    return querier, body


def _resident_code(nation: Nation, org: str) -> str:
    with nation.runtimes[org].db.transaction() as s:
        code = s.scalar(select(Resident.resident_code).where(Resident.status == "active").limit(1))
    assert code
    return str(code)


def _answers(nation: Nation, org: str) -> int:
    with nation.runtimes[org].db.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(LinkageAnswer)) or 0)


def test_unsigned_requests_are_refused(nation: Nation) -> None:
    querier, query = _query(nation)
    before = _answers(nation, querier)
    for path, payload in ((FIND, {"resident_code": _resident_code(nation, querier)}), (QUERY, query)):
        resp = httpx.post(nation.urls[querier] + path, json=payload, timeout=60)
        assert resp.status_code == 401, path
        detail = resp.json()["detail"]
        assert "not signed" in detail and "internal interface" in detail and "own credentials" in detail
        assert payload.get("my_number", "-") not in resp.text
    # the agency's interface as well
    resp = httpx.post(
        nation.urls["nenkin"] + "/staff/linkage/api/result", json={"exchange_id": "x"}, timeout=60
    )
    assert resp.status_code == 401
    assert _answers(nation, querier) == before


@pytest.mark.parametrize("signer", ["p130001", "jlis", "network", "other-municipality"])
def test_requests_signed_by_another_organisation_are_refused(nation: Nation, signer: str) -> None:
    querier, query = _query(nation)
    if signer == "other-municipality":
        signer = next(m.id for m in nation.topology.of_kind("municipality") if m.id != querier)
    before = _answers(nation, querier)
    for path, payload in ((FIND, {"resident_code": _resident_code(nation, querier)}), (QUERY, query)):
        resp, _ = _signed_post(nation, signer, querier, path, payload)
        assert resp.status_code == 401, (signer, path)
        assert "only this organisation itself" in resp.json()["detail"]
    assert _answers(nation, querier) == before
    # the network may call the agency's /api/, but not its internal interface
    resp, _ = _signed_post(nation, signer, "nenkin", "/staff/linkage/api/result", {"exchange_id": "x"})
    assert resp.status_code == 401


def test_signed_by_the_organisation_itself_works_once(nation: Nation) -> None:
    querier, query = _query(nation)
    code = _resident_code(nation, querier)
    resp, headers = _signed_post(nation, querier, querier, FIND, {"resident_code": code})
    assert resp.status_code == 200, resp.text
    assert resp.headers.get("signature") and resp.json()["resident_id"]
    replay = httpx.post(
        nation.urls[querier] + FIND,
        content=json.dumps({"resident_code": code}).encode(),
        headers=headers,
        timeout=60,
    )
    assert replay.status_code == 401 and "replayed" in replay.json()["detail"]

    before = _answers(nation, querier)
    resp, headers = _signed_post(nation, querier, querier, QUERY, query)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["status"] == "answered"
    replay = httpx.post(
        nation.urls[querier] + QUERY, content=json.dumps(query, ensure_ascii=False).encode(), headers=headers
    )
    assert replay.status_code == 401 and "replayed" in replay.json()["detail"]
    assert _answers(nation, querier) == before + 1  # the replay asked nothing
    with nation.runtimes[querier].db.transaction() as s:
        row = s.scalar(select(LinkageAnswer).where(LinkageAnswer.exchange_id == answer["exchange_id"]))
        assert row is not None and row.staff == INTERNAL_STAFF_MARK + "照会 担当"

    # SignedClient (what the commands use) checks the organisation's signed answer
    topo = nation.topology
    client = SignedClient(topo.credentials(querier), topo.trust_store(), {querier: nation.urls[querier]})
    try:
        again = client.call(
            querier, "POST", "/staff/linkage/api/result", {"exchange_id": answer["exchange_id"]}
        )
        assert again["status"] == "answered"
    finally:
        client.close()


def test_jlis_card_centre_batch_answers_only_jlis_itself(nation: Nation) -> None:
    """The manufacturing batch and the 受付センター's keying of paper applications are J-LIS's own
    systems: nobody else may run or feed them."""
    from kojinbango.jlis.cards.models import CardApplication

    def applications() -> int:
        with nation.runtimes["jlis"].db.transaction() as s:
            return int(s.scalar(select(func.count()).select_from(CardApplication)) or 0)

    before = applications()
    postal = {"lg_code": "131016", "application_id": "1" * 23, "photo": ""}
    for path, payload in (("/staff/cards/manufacture", {}), ("/staff/cards/applications/postal", postal)):
        resp = httpx.post(nation.urls["jlis"] + path, json=payload, timeout=60)
        assert resp.status_code == 401, path
        assert "not signed" in resp.json()["detail"]
        municipality = nation.topology.of_kind("municipality")[0].id
        resp, _ = _signed_post(nation, municipality, "jlis", path, payload)
        assert resp.status_code == 401 and "only this organisation itself" in resp.json()["detail"], path
    assert applications() == before
    # J-LIS's own signed call runs the batch
    resp, _ = _signed_post(nation, "jlis", "jlis", "/staff/cards/manufacture", {})
    assert resp.status_code == 200 and set(resp.json()) == {"manufactured", "stale", "delivered"}


def test_the_agencys_query_interface_checks_its_body_and_answers_in_json(nation: Nation) -> None:
    """The agency's query route reads its body itself (the exchange path's hot route): a body that
    is not a query gets the same 422 as every other route, naming the field and not echoing the
    number; a query gets its signed, verified answer."""
    a = args_of(scenarios(nation.topology.root)[1]["command"])  # 日本年金機構 asks A (pension-exemption)
    assert a["querier"] == "nenkin"
    good = {"my_number": a["my-number"], "provider": a["provider"], "affair": a["affair"], "info": a["info"]}
    for bad, field in (({**good, "my_number": ""}, "my_number"), ({**good, "wait_seconds": 500}, "wait_seconds"),
                       ({k: v for k, v in good.items() if k != "affair"}, "affair")):  # fmt: skip
        resp, _ = _signed_post(nation, "nenkin", "nenkin", QUERY, bad)
        assert resp.status_code == 422, resp.text
        assert [e["loc"] for e in resp.json()["detail"]] == [["body", field]]
        assert a["my-number"] not in resp.text
    raw = b'{"my_number": '  # not JSON at all
    headers = sign_request(nation.topology.credentials("nenkin"), "POST", QUERY, "", raw, "nenkin")
    headers["content-type"] = "application/json"
    resp = httpx.post(nation.urls["nenkin"] + QUERY, content=raw, headers=headers, timeout=60)
    assert resp.status_code == 422 and "JSON" in resp.json()["detail"][0]["msg"]

    resp, _ = _signed_post(nation, "nenkin", "nenkin", QUERY, good)
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    answer = resp.json()
    assert answer["status"] == "answered" and answer["signature_valid"] is True
    assert answer["provider"] == a["provider"] and answer["data"] is not None and answer["as_of"]


def test_the_organisations_own_mac_opens_its_internal_interfaces_only(nation: Nation) -> None:
    """Its commands call its internal interfaces with its MAC (signing.InternalKey) and check the
    MAC'd answer; the same MAC on a route between organisations is refused."""
    querier, query = _query(nation)
    topo = nation.topology
    creds = topo.credentials(querier)
    mac = InternalKey.of(creds)
    code = _resident_code(nation, querier)
    body = json.dumps({"resident_code": code}).encode()
    headers = sign_request(creds, "POST", FIND, "", body, querier, mac) | {"content-type": "application/json"}
    resp = httpx.post(nation.urls[querier] + FIND, content=body, headers=headers, timeout=60)
    assert resp.status_code == 200 and resp.json()["resident_id"]
    nonce = headers["signature-input"].split('nonce="')[1].split('"')[0]
    assert verify_response(
        resp.headers, 200, resp.content, querier, nonce, topo.trust_store(), internal=mac
    ).mac
    # not on a route between organisations, even its own
    for path in ("/api/if/provide", "/api/addressee/find"):
        headers = sign_request(creds, "POST", path, "", b"{}", querier, mac) | {
            "content-type": "application/json"
        }
        resp = httpx.post(nation.urls[querier] + path, content=b"{}", headers=headers, timeout=60)
        assert resp.status_code == 401 and "internal interfaces" in resp.json()["detail"]
    # SignedClient: a MAC to its own internal interfaces, a signature to anyone else
    client = SignedClient(creds, topo.trust_store(), dict(nation.urls))
    try:
        _, _, own = client._signed(querier, "POST", QUERY, query)
        _, _, other = client._signed("nenkin", "POST", "/api/if/provide", {})
        assert (
            'alg="hmac-sha256"' in own["signature-input"]
            and 'alg="ecdsa-p256-sha256"' in other["signature-input"]
        )
        assert client.call(querier, "POST", FIND, {"resident_code": code})["resident_id"]
    finally:
        client.close()
