"""The first staff page: search by name or kana, numbers masked to the last 4 digits, the 住民票 with history."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from kojinbango.municipality.register.models import Resident
from kojinbango.nation import Nation, running


@pytest.fixture(scope="module")
def nation(small_nation_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("staff") / "nation"
    shutil.copytree(small_nation_dir, d)
    with running(d) as n:
        yield n


@pytest.fixture(scope="module")
def http(nation: Nation, staff_login):
    """A 住民記録 staff member logged in, with an applicant context open."""
    client = staff_login(
        nation, nation.municipalities()[0].org_id, ["resident_records"], "住民票の写し等の交付"
    )
    yield client
    client.close()


def _some_resident(nation: Nation) -> Resident:
    rt = nation.municipalities()[0]
    with rt.db.transaction() as s:
        r = s.scalar(select(Resident).where(Resident.status == "active").order_by(Resident.id).limit(1))
        assert r is not None
        return r


def test_search_by_kana_and_by_name(nation: Nation, http) -> None:
    r = _some_resident(nation)
    base = nation.urls[nation.municipalities()[0].org_id]
    # hiragana input, half-width katakana and full-width katakana all find the person by フリガナ
    import jaconv

    for q in (jaconv.kata2hira(r.family_kana), jaconv.z2h(r.family_kana), r.family_kana):
        page = http.get(base + "/staff/", params={"q": q}).text
        assert f'/staff/residents/{r.id}"' in page, q
    page = http.get(base + "/staff/", params={"q": r.family_name + r.given_name}).text
    assert f'/staff/residents/{r.id}"' in page


def test_numbers_are_masked_everywhere(nation: Nation, http) -> None:
    r = _some_resident(nation)
    base = nation.urls[nation.municipalities()[0].org_id]
    assert r.my_number
    for url in (base + "/staff/", base + f"/staff/residents/{r.id}"):
        page = http.get(url).text
        assert r.my_number not in page and r.resident_code not in page
        assert not re.search(r"(?<!\d)\d{12}(?!\d)", page)
    assert "********" + r.my_number[-4:] in http.get(base + f"/staff/residents/{r.id}").text


def test_resident_page_shows_history(nation: Nation, http) -> None:
    r = _some_resident(nation)
    base = nation.urls[nation.municipalities()[0].org_id]
    page = http.get(base + f"/staff/residents/{r.id}").text
    assert "異動履歴" in page and "個人番号の職権記載" in page
    assert r.family_name in page


def test_notice_on_demand_is_a_pdf(nation: Nation, http) -> None:
    r = _some_resident(nation)
    base = nation.urls[nation.municipalities()[0].org_id]
    resp = http.post(base + f"/staff/residents/{r.id}/notice")
    assert resp.status_code == 200 and resp.content.startswith(b"%PDF")


def test_unknown_resident_is_404(nation: Nation, http) -> None:
    base = nation.urls[nation.municipalities()[0].org_id]
    assert http.get(base + "/staff/residents/999999").status_code == 404
