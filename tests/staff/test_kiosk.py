"""コンビニ交付 under load: many different card holders at once, each request answered with that
person's own 住民票の写し — every time (the 2023 横浜市 incident, DOMAIN.md §9.4)."""

from __future__ import annotations

import base64
import io
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from pypdf import PdfReader
from sqlalchemy import select

from kojinbango.card.reader import CardReader
from kojinbango.card.relying import login_message
from kojinbango.common.pki import load_certificate
from kojinbango.documents.pades import verify_pdf
from kojinbango.domain.jst import today_jst
from kojinbango.holder import Client, issue_card
from kojinbango.municipality.forms.models import IssuedDocument
from kojinbango.municipality.register.models import Resident
from kojinbango.nation import Nation, running

ORG = "m131016"
PIN = "4321"
PEOPLE = 100
ROUNDS = 3  # 300 requests, interleaved across people


@pytest.fixture(scope="module")
def nation(small_nation_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("kiosk") / "nation"
    shutil.copytree(small_nation_dir, d)
    with running(d) as n:
        yield n


@pytest.fixture(scope="module")
def holders(nation: Nation, tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Resident, Path]]:
    d = tmp_path_factory.mktemp("kiosk-cards")

    adult = today_jst().replace(year=today_jst().year - 16)
    with nation.runtimes[ORG].db.transaction() as s:
        people = list(
            s.scalars(
                select(Resident)
                .where(Resident.status == "active", Resident.birth_date < adult)
                .order_by(Resident.id)
                .limit(PEOPLE)
            )
        )
    client = Client(nation.topology, nation.urls)

    def one(r: Resident) -> tuple[Resident, Path]:
        card = d / f"{r.id}.json"
        issue_card(client, r.resident_code, PIN, None, card)
        return r, card

    made = [one(r) for r in people]  # one at a time: the card centre manufactures in batches
    client.close()
    return made


def kiosk_request(
    http: httpx.Client, reader: CardReader, pin: str = PIN, **options: object
) -> tuple[str, httpx.Response]:
    ch = http.post("/kiosk/challenge").json()
    sig = reader.sign_auth(pin, login_message(ch["relying_party"], ch["challenge_id"], ch["challenge"]))
    body = {
        "challenge_id": ch["challenge_id"],
        "created": ch["created"],
        "certificate": base64.b64encode(reader.auth_certificate()).decode(),
        "signature": base64.b64encode(sig).decode(),
        **options,
    }
    return ch["challenge_id"], http.post("/kiosk/issue", json=body)


def test_each_person_gets_their_own_document_under_load(nation: Nation, holders) -> None:
    assert len(holders) >= PEOPLE
    ca = load_certificate(nation.topology.resolve(nation.topology.ca_certificate))
    readers = {r.id: CardReader(card) for r, card in holders}
    names = {r.id: r.given_name for r, _ in holders}
    jobs = [r.id for _ in range(ROUNDS) for r, _ in holders]

    def one(rid: int) -> tuple[int, str, dict]:
        with httpx.Client(base_url=nation.urls[ORG], timeout=120) as http:  # each kiosk its own session
            challenge_id, resp = kiosk_request(http, readers[rid])
        assert resp.status_code == 200, resp.text
        return rid, challenge_id, resp.json()

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(one, jobs))
    assert len(answers) == PEOPLE * ROUNDS
    numbers = set()
    with nation.runtimes[ORG].db.transaction() as s:
        issued = {
            d.document_number: d
            for d in s.scalars(select(IssuedDocument).where(IssuedDocument.channel == "kiosk"))
        }
    for k, (rid, challenge_id, body) in enumerate(answers):
        assert body["kiosk_request"] == challenge_id  # the answer names its own request
        record = issued[body["document_number"]]
        assert record.resident_ids == [rid] and record.requester_id == rid
        pdf = base64.b64decode(body["pdf"])
        text = "".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(pdf)).pages)
        assert body["document_number"] in text
        assert names[rid] in text.replace(" ", "").replace("\u3000", "")
        if k % 50 == 0:
            assert verify_pdf(pdf, ca).ok
        numbers.add(body["document_number"])
    assert len(numbers) == PEOPLE * ROUNDS  # a fresh document every time


def test_kiosk_refusals(nation: Nation, holders) -> None:
    (r, card), _ = holders[0], holders[1]
    reader = CardReader(card)
    http = httpx.Client(base_url=nation.urls[ORG], timeout=60)
    # a replayed request is refused
    ch = http.post("/kiosk/challenge").json()
    sig = reader.sign_auth(PIN, login_message(ch["relying_party"], ch["challenge_id"], ch["challenge"]))
    body = {
        "challenge_id": ch["challenge_id"],
        "created": ch["created"],
        "certificate": base64.b64encode(reader.auth_certificate()).decode(),
        "signature": base64.b64encode(sig).decode(),
    }
    assert http.post("/kiosk/issue", json=body).status_code == 200
    again = http.post("/kiosk/issue", json=body)
    assert again.status_code == 401 and again.json()["reason"] == "replayed"
    # a signature over another challenge is refused
    forged = {**body, "challenge_id": "0" * 32}
    assert http.post("/kiosk/issue", json=forged).status_code in (401, 403)
    # the other municipality's kiosk does not serve this resident
    other = httpx.Client(base_url=nation.urls["m131041"], timeout=60)
    _, resp = kiosk_request(other, reader)
    assert resp.status_code == 404 and resp.json()["reason"] == "not_resident"
    # with the number: printed formatted, since the holder asks for themself
    _, resp = kiosk_request(http, reader, with_my_number=True)
    text = "".join(
        p.extract_text() or "" for p in PdfReader(io.BytesIO(base64.b64decode(resp.json()["pdf"]))).pages
    )
    assert r.my_number and f"{r.my_number[:4]} {r.my_number[4:8]} {r.my_number[8:]}" in text
    http.close()
    other.close()
