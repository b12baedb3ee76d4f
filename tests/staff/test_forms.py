"""Forms (帳票): 住民票の写し with or without the number, 記載事項証明書, 交付通知書 — signed PDFs that
render the register's characters and verify against the deployment CA."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from kojinbango.common.pki import load_certificate
from kojinbango.documents.certificates import PersonEntry, ResidentCertificate, render_certificate
from kojinbango.documents.pades import verify_pdf
from kojinbango.municipality.register.models import Resident
from kojinbango.municipality.staff.client import create_staff, staff_client
from kojinbango.municipality.staff.models import AccessLog
from kojinbango.nation import Nation, running

ORG = "m131016"
needs_poppler = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")


@pytest.fixture(scope="module")
def nation(small_nation_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("forms") / "nation"
    shutil.copytree(small_nation_dir, d)
    with running(d) as n:
        yield n


@pytest.fixture(scope="module")
def ca(nation: Nation):
    return load_certificate(nation.topology.resolve(nation.topology.ca_certificate))


@pytest.fixture(scope="module")
def clerk(nation: Nation):
    acc = create_staff(
        nation.runtimes[ORG].services["staff"], "forms-juki", "窓口 花子", ["resident_records"]
    )
    with closing(staff_client(nation.urls[ORG], acc, "住民票の写し等の交付")) as c:
        yield c


def _household_of_two(nation: Nation) -> tuple[Resident, list[Resident]]:
    with nation.runtimes[ORG].db.transaction() as s:
        hid = s.scalar(
            select(Resident.household_id)
            .where(Resident.status == "active")
            .group_by(Resident.household_id)
            .having(func.count() >= 2)
            .order_by(Resident.household_id)
            .limit(1)
        )
        members = list(
            s.scalars(select(Resident).where(Resident.household_id == hid, Resident.status == "active"))
        )
    return members[0], members


def _text(pdf: bytes, tmp_path: Path) -> str:
    f = tmp_path / "doc.pdf"
    f.write_bytes(pdf)
    return subprocess.run(["pdftotext", str(f), "-"], capture_output=True, text=True, check=True).stdout


@needs_poppler
def test_copy_with_number_for_the_person_themself(nation: Nation, clerk, ca, tmp_path: Path) -> None:
    r, _ = _household_of_two(nation)
    assert r.my_number
    page = clerk.get(f"/staff/forms/residents/{r.id}")
    assert page.status_code == 200 and "住民票の写し" in page.text
    resp = clerk.post(
        f"/staff/forms/residents/{r.id}",
        data={
            "kind": "copy",
            "scope": "self",
            "requester": "self",
            "with_my_number": "1",
            "with_relationship": "1",
        },
    )
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/pdf"
    check = verify_pdf(resp.content, ca)
    assert check.ok and check.signer == f"{ORG} document signing"
    text = _text(resp.content, tmp_path)
    assert r.family_name in text and f"{r.my_number[:4]} {r.my_number[4:8]} {r.my_number[8:]}" in text
    assert "住民票の写し" in text
    entries = [
        e
        for e in _by(nation, "forms-juki")
        if e.action == "print" and e.subject_id == str(r.id) and e.purpose == "住民票の写し等の交付"
    ]
    assert entries and entries[-1].detail["with_my_number"] is True


@needs_poppler
def test_household_copy_without_number(nation: Nation, clerk, tmp_path: Path) -> None:
    r, members = _household_of_two(nation)
    resp = clerk.post(
        f"/staff/forms/residents/{r.id}",
        data={"kind": "copy", "scope": "household", "requester": "household", "with_relationship": "1"},
    )
    assert resp.status_code == 200
    text = _text(resp.content, tmp_path)
    for m in members:
        assert m.given_name in text
        assert m.my_number and f"{m.my_number[:4]} {m.my_number[4:8]}" not in text
    assert "（省略）" in text


def test_entitlement_and_validation_messages(nation: Nation, clerk) -> None:
    r, _ = _household_of_two(nation)
    agent = clerk.post(
        f"/staff/forms/residents/{r.id}",
        data={"kind": "copy", "scope": "self", "requester": "agent", "with_my_number": "1"},
    )
    assert agent.status_code == 422
    assert "本人又は同一世帯" in agent.text and "使用目的" in agent.text
    items = clerk.post(f"/staff/forms/residents/{r.id}", data={"kind": "items", "requester": "self"})
    assert items.status_code == 422 and "choose the items" in items.text
    nobody = clerk.post(f"/staff/forms/residents/{r.id}", data={"kind": "copy"})
    assert nobody.status_code == 422 and "who is asking" in nobody.text


@needs_poppler
def test_items_certificate_and_card_ready_letter(nation: Nation, clerk, ca, tmp_path: Path) -> None:
    r, _ = _household_of_two(nation)
    resp = clerk.post(
        f"/staff/forms/residents/{r.id}",
        data={
            "kind": "items",
            "requester": "third_party",
            "purpose": "相続手続",
            "items": ["name", "address"],
        },
    )
    assert resp.status_code == 200 and verify_pdf(resp.content, ca).ok
    text = _text(resp.content, tmp_path)
    assert (
        "住民票記載事項証明書" in text and "相続手続" in text and "個人番号" not in text.split("証明する")[0]
    )
    letter = clerk.post(f"/staff/forms/residents/{r.id}/card-ready")
    assert letter.status_code == 200 and verify_pdf(letter.content, ca).ok
    assert "個人番号カード交付通知書" in _text(letter.content, tmp_path)


def test_public_verification_page(nation: Nation, clerk) -> None:
    import httpx

    r, _ = _household_of_two(nation)
    pdf = clerk.post(
        f"/staff/forms/residents/{r.id}", data={"kind": "copy", "scope": "self", "requester": "self"}
    ).content
    base = nation.urls[ORG]
    good = httpx.post(base + "/documents/verify", files={"document": ("a.pdf", pdf, "application/pdf")})
    assert "有効" in good.text and "交付記録" in good.text
    tampered = bytearray(pdf)
    at = len(pdf) // 3
    tampered[at] ^= 0x01
    bad = httpx.post(
        base + "/documents/verify", files={"document": ("a.pdf", bytes(tampered), "application/pdf")}
    )
    assert "有効" not in bad.text


@needs_poppler
def test_rare_characters_render_and_extract(ca, tmp_path: Path) -> None:
    """髙, 﨑 and 𠮷 are embedded glyphs (not .notdef boxes) and extract as the same characters."""
    doc = ResidentCertificate(
        kind="copy",
        municipality="東京都千代田区",
        mayor="千代田区長",
        address="東京都千代田区九段南一丁目2番1号",
        household_head="髙﨑　𠮷太郎",
        people=[
            PersonEntry(
                "髙﨑　𠮷太郎",
                "タカサキ　ヨシタロウ",
                dt.date(1980, 4, 1),
                "男",
                "世帯主",
                dt.date(2000, 1, 1),
                dt.date(2000, 1, 1),
            )
        ],
        issued_on=dt.date(2026, 11, 26),
        document_number="T-1",
    )
    pdf = render_certificate(doc)
    text = _text(pdf, tmp_path)
    assert "髙﨑" in text and "𠮷太郎" in text
    f = tmp_path / "rare.pdf"
    f.write_bytes(pdf)
    fonts = subprocess.run(["pdffonts", str(f)], capture_output=True, text=True, check=True).stdout
    assert "IPAmjMincho" in fonts and all(" yes " in line for line in fonts.splitlines()[2:])
    subprocess.run(
        ["pdftoppm", "-r", "100", "-png", "-singlefile", str(f), str(tmp_path / "rare")], check=True
    )
    image = Image.open(tmp_path / "rare.png").convert("L")
    # the name cell holds ink (glyphs drawn), and the page is mostly white paper
    w, h = image.size
    name_cell = image.crop((int(w * 0.3), int(h * 0.14), int(w * 0.7), int(h * 0.26)))
    assert int((np.asarray(name_cell) < 128).sum()) > 200
    assert int((np.asarray(image) > 200).sum()) > 0.8 * w * h


def _by(nation: Nation, login: str) -> list[AccessLog]:
    with nation.runtimes[ORG].db.transaction() as s:
        return list(s.scalars(select(AccessLog).where(AccessLog.staff_login == login).order_by(AccessLog.id)))
