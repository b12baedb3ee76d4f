"""The legal table as data, and 副本 refresh on change and by nightly batch (every answer says as of when)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from exchange_helpers import A, args_of, scenarios
from sqlalchemy import select

from kojinbango.common.linkage import parse_iso
from kojinbango.domain.jst import today_jst
from kojinbango.municipality.addressee.models import Addressee
from kojinbango.municipality.register.models import Resident
from kojinbango.nation import Nation
from kojinbango.network.legal import LegalTable, LegalTableError, default_rows, parse, write_default


def test_the_default_table_authorises_and_refuses(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    write_default(path)
    table = LegalTable(path)
    ok = table.authorise(
        "municipality", "m131041", "municipality", "m131016", "child-allowance", "地方税関係情報"
    )
    assert ok.allowed and ok.row is not None and ok.row.illustrative
    assert not table.authorise(
        "municipality", "m1", "municipality", "m1", "child-allowance", "地方税関係情報"
    ).allowed
    assert not table.authorise(
        "agency", "other", "municipality", "m1", "pension-exemption", "地方税関係情報"
    ).allowed
    assert not table.authorise(
        "agency", "nenkin", "municipality", "m1", "pension-exemption", "年金給付関係情報"
    ).allowed
    assert table.authorise(
        "agency", "nenkin", "municipality", "m1", "pension-exemption", "住民票関係情報"
    ).allowed
    assert not table.authorise(
        "municipality", "m1", "agency", "nenkin", "nhi-pension", "地方税関係情報"
    ).allowed
    assert table.authorise(
        "municipality", "m1", "agency", "nenkin", "nhi-pension", "年金給付関係情報"
    ).allowed
    # the operator's edit is picked up without a restart; an existing file is never overwritten
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["rows"] = [r for r in raw["rows"] if r["id"] != "childcare"]
    path.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    write_default(path)
    assert "childcare" not in {r.id for r in table.rows()}
    # a broken edit leaves the last good table in force
    path.write_text('{"rows": [{"id": "x"}]}', encoding="utf-8")
    assert "child-allowance" in {r.id for r in table.rows()}
    assert table.authorise(
        "municipality", "m2", "municipality", "m1", "child-allowance", "地方税関係情報"
    ).allowed


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": "Bad Id"}, "id must be"),
        ({"querier": "bank"}, "querier must be one of"),
        ({"info": ["所得情報"]}, "unknown categories"),
        ({"info": []}, "non-empty list"),
        ({"affair": " "}, "affair"),
    ],
)
def test_bad_rows_are_reported(change: dict, message: str) -> None:
    row = {**default_rows()[0], **change}
    with pytest.raises(LegalTableError, match=message):
        parse(json.dumps({"rows": [row]}))
    with pytest.raises(LegalTableError, match="twice"):
        parse(json.dumps({"rows": [default_rows()[0], default_rows()[0]]}))


def test_on_change_refresh_and_the_nightly_batch(nation: Nation, nation_dir: Path) -> None:
    linkage = nation.runtimes[A].services["linkage"]
    im = nation.runtime("intermediate").services["intermediate"]
    number = args_of(scenarios(nation_dir)[1]["command"])["my-number"]
    with linkage.db.transaction() as s:
        r = s.scalar(select(Resident).where(Resident.my_number == number))
        assert r is not None
        integrated = s.scalar(select(Addressee.integrated_number).where(Addressee.resident_id == r.id))
        household, postal = r.household_id, r.postal_code
    before = im.copy_of(A, integrated, "住民票関係情報")
    register = nation.register(A)
    register.move_within(household, postal, "東京都千代田区永田町一丁目7番1号", "", today_jst())
    linkage.tick()  # what the worker does every few seconds: 住民票関係情報 is refreshed on change
    after = im.copy_of(A, integrated, "住民票関係情報")
    assert after["data"]["address"].startswith("東京都千代田区永田町一丁目7番1号")
    assert parse_iso(after["as_of"]) > parse_iso(before["as_of"])
    # 地方税関係情報 is nightly: the worker leaves it alone until the nightly batch confirms it
    tax_before = im.copy_of(A, integrated, "地方税関係情報")
    linkage._set("nightly", "1999-01-01")
    done = linkage.tick(dt.datetime.now(dt.UTC).replace(hour=23, minute=59))
    assert "nightly" in done
    tax_after = im.copy_of(A, integrated, "地方税関係情報")
    assert parse_iso(tax_after["as_of"]) > parse_iso(tax_before["as_of"])  # confirmed current, as of now
    assert "nightly" not in linkage.tick(dt.datetime.now(dt.UTC).replace(hour=23, minute=59))
