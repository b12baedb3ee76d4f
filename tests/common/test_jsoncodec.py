"""common.jsoncodec: orjson on the exchange path says what json.dumps(..., default=str) said."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kojinbango.common import jsoncodec
from kojinbango.common.db import make_engine

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)  # fmt: skip


@given(_json)
def test_round_trip_and_same_value_as_the_standard_library(value: object) -> None:
    raw = jsoncodec.encode(value)
    assert jsoncodec.decode(raw) == value
    assert json.loads(raw) == json.loads(json.dumps(value, ensure_ascii=False, default=str))
    assert jsoncodec.decode(jsoncodec.encode_text(value)) == value


def test_japanese_text_is_written_as_is_not_escaped() -> None:
    assert jsoncodec.encode({"氏名": "髙橋 太郎"}) == '{"氏名":"髙橋 太郎"}'.encode()


def test_datetimes_and_dataclasses_as_json_dumps_default_str_writes_them() -> None:
    @dataclasses.dataclass
    class Point:
        x: int

    t = dt.datetime(2026, 11, 27, 9, 30, 5)
    value = {"at": t, "day": dt.date(2026, 11, 27), "p": Point(1)}
    assert json.loads(jsoncodec.encode(value)) == json.loads(json.dumps(value, default=str))
    assert jsoncodec.decode(jsoncodec.encode(value))["at"] == "2026-11-27 09:30:05"


def test_what_orjson_refuses_falls_back_to_the_standard_library() -> None:
    for big in (2**80 + 1, -(2**63) - 1, 2**64, 10**40 + 7):  # beyond 64 bits: orjson reads floats
        assert jsoncodec.decode(jsoncodec.encode({"n": big})) == {"n": big}
        back = jsoncodec.decode(jsoncodec.encode_text([big, "x"]))  # as str: the JSON columns' form
        assert back == [big, "x"] and type(back[0]) is int
    as_text = {"id": "12345678901234567890", "n": 1.5}  # 19 digits in a string: read again, the same
    assert jsoncodec.decode(jsoncodec.encode(as_text)) == as_text
    largest = [2**64 - 1]  # the largest integer orjson reads itself
    assert jsoncodec.decode(bytearray(jsoncodec.encode(largest))) == largest
    assert json.loads(jsoncodec.encode({1: "a"})) == {"1": "a"}  # a key that is not a string


def test_not_json_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        jsoncodec.decode(b"{not json")


def test_json_columns_use_it(tmp_path: Path) -> None:
    from sqlalchemy import JSON, Column, Integer, MetaData, Table, insert, select, text

    engine = make_engine(f"sqlite:///{tmp_path / 'j.db'}")
    md = MetaData()
    t = Table("t", md, Column("id", Integer, primary_key=True), Column("doc", JSON))
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(t), {"id": 1, "doc": {"氏名": "髙橋", "n": [1, 2]}})
        stored = conn.execute(text("SELECT doc FROM t")).scalar_one()
        assert stored == '{"氏名":"髙橋","n":[1,2]}'  # compact, not escaped: written by jsoncodec
        assert conn.execute(select(t.c.doc)).scalar_one() == {"氏名": "髙橋", "n": [1, 2]}
        conn.execute(insert(t), {"id": 2, "doc": {"n": -(2**63) - 1}})  # beyond 64 bits: read back exact
        assert conn.execute(select(t.c.doc).where(t.c.id == 2)).scalar_one() == {"n": -(2**63) - 1}
