"""Every organisation refuses unsigned, wrongly signed and replayed requests with 401, changing nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from kojinbango.common.pki import issue_org_certificate
from kojinbango.common.signing import sign_request
from kojinbango.jlis.models import CodeBundle
from kojinbango.nation import Nation, running
from kojinbango.prefecture.models import RelayEntry


@pytest.fixture(scope="module")
def nation(small_nation_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("sec") / "nation"
    shutil.copytree(small_nation_dir, d)
    with running(d) as n:
        yield n


def _post(
    nation: Nation, sender: str, target: str, path: str, payload: dict, creds=None
) -> tuple[httpx.Response, dict]:
    body = json.dumps(payload).encode()
    creds = creds or nation.topology.credentials(sender)
    headers = sign_request(creds, "POST", path, "", body, target)
    headers["content-type"] = "application/json"
    resp = httpx.post(nation.urls[target] + path, content=body, headers=headers)
    return resp, headers


def _bundles(nation: Nation) -> int:
    with nation.runtime("jlis").db.transaction() as s:
        return s.scalar(select(func.count()).select_from(CodeBundle)) or 0


def _relay(nation: Nation) -> int:
    with nation.runtime("prefecture").db.transaction() as s:
        return s.scalar(select(func.count()).select_from(RelayEntry)) or 0


ENDPOINTS = [
    ("jlis", "/api/code-bundles", {"request_id": "sec-test-0001", "count": 5}),
    ("p130001", "/api/identity/changes", {"changes": []}),
    ("m131041", "/api/moves/arrival", {"resident_codes": [], "moved_in_on": "2026-01-01"}),
]


@pytest.mark.parametrize(("target", "path", "payload"), ENDPOINTS)
def test_unsigned_request_is_refused(nation: Nation, target: str, path: str, payload: dict) -> None:
    before = (_bundles(nation), _relay(nation))
    resp = httpx.post(nation.urls[target] + path, json=payload)
    assert resp.status_code == 401
    assert "not signed" in resp.json()["detail"]
    assert (_bundles(nation), _relay(nation)) == before


def test_good_request_then_replay(nation: Nation) -> None:
    before = _bundles(nation)
    resp, headers = _post(
        nation, "m131016", "jlis", "/api/code-bundles", {"request_id": "sec-test-0002", "count": 5}
    )
    assert resp.status_code == 200 and len(resp.json()["resident_codes"]) == 5
    assert _bundles(nation) == before + 1
    replay = httpx.post(
        nation.urls["jlis"] + "/api/code-bundles",
        content=json.dumps({"request_id": "sec-test-0002", "count": 5}).encode(),
        headers=headers,
    )
    assert replay.status_code == 401 and "replayed" in replay.json()["detail"]
    assert _bundles(nation) == before + 1


def test_request_signed_by_an_outsider_is_refused(nation: Nation, tmp_path: Path) -> None:
    # Same organisation id, but a key pair from a CA this deployment does not trust.
    impostor = issue_org_certificate(tmp_path, "m131016", "impostor")
    before = _bundles(nation)
    resp, _ = _post(
        nation,
        "m131016",
        "jlis",
        "/api/code-bundles",
        {"request_id": "sec-test-0003", "count": 5},
        creds=impostor,
    )
    assert resp.status_code == 401
    assert _bundles(nation) == before


@pytest.mark.parametrize(
    ("sender", "target", "path", "payload"),
    [
        (
            "p130001",
            "jlis",
            "/api/code-bundles",
            {"request_id": "sec-test-0004", "count": 5},
        ),  # not a municipality
        ("m131016", "jlis", "/api/identity/changes", {"changes": []}),  # must come through the prefecture
        ("jlis", "p130001", "/api/identity/changes", {"changes": []}),  # not one of its municipalities
        ("p130001", "m131041", "/api/moves/arrival", {"resident_codes": [], "moved_in_on": "2026-01-01"}),
    ],
)
def test_request_from_the_wrong_organisation_is_refused(
    nation: Nation, sender, target, path, payload
) -> None:
    before = (_bundles(nation), _relay(nation))
    resp, _ = _post(nation, sender, target, path, payload)
    assert resp.status_code == 401
    assert (_bundles(nation), _relay(nation)) == before


def test_request_addressed_to_another_organisation_is_refused(nation: Nation) -> None:
    body = json.dumps({"request_id": "sec-test-0005", "count": 5}).encode()
    headers = sign_request(
        nation.topology.credentials("m131016"), "POST", "/api/code-bundles", "", body, "p130001"
    )
    resp = httpx.post(nation.urls["jlis"] + "/api/code-bundles", content=body, headers=headers)
    assert resp.status_code == 401


def test_answers_are_signed(nation: Nation) -> None:
    reg = nation.register("m131016")
    before = reg.free_codes()
    # SignedClient verifies every answer's signature; a successful call proves it.
    reg.ensure_code_stock(before + 10)
    assert reg.free_codes() >= before + 10


def test_every_organisation_refuses_unsigned_and_replayed(nation: Nation) -> None:
    """Whatever organisations the deployment has, /api/ is closed to unsigned and replayed calls."""
    sender = "m131016"
    for org_id in nation.topology.organisations:
        if org_id == sender or org_id not in nation.urls:
            continue
        url = nation.urls[org_id] + "/api/security-probe"
        assert httpx.post(url, json={}).status_code == 401, org_id
        body = b"{}"
        headers = sign_request(
            nation.topology.credentials(sender), "POST", "/api/security-probe", "", body, org_id
        )
        headers["content-type"] = "application/json"
        first = httpx.post(url, content=body, headers=headers)
        assert first.status_code in (401, 404), org_id  # 401 where this sender may not call at all
        replay = httpx.post(url, content=body, headers=headers)
        assert replay.status_code == 401, org_id
