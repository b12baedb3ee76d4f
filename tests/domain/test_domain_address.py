from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kojinbango.domain.address import PREFECTURES, address_key, split_prefecture


def _same(*values: str) -> str:
    keys = {address_key(v) for v in values}
    assert len(keys) == 1, {v: address_key(v) for v in values}
    return keys.pop()


def test_required_example() -> None:
    key = _same(
        "東京都千代田区神田神保町2丁目1番地2号",
        "東京都千代田区神田神保町二丁目1-2",
        "東京都千代田区神田神保町２－１－２",
    )
    assert key == "東京都千代田区神田神保町2-1-2"


def test_number_part_variants() -> None:
    _same(
        "神保町2丁目1番地2号",
        "神保町2丁目1番2号",
        "神保町2丁目1-2",
        "神保町2-1-2",
        "神保町2ー1-2",
        "神保町2―1―2",
        "神保町2‐1‐2",
        "神保町二丁目一番二号",
        "神保町二ー一ー二",
        "神保町2の1の2",
        "神保町 2-1-2",
        "神保町2 - 1 - 2",
    )
    _same("北山123番地の4", "北山123番地4", "北山123-4", "北山123の4", "北山百二十三番地の四")
    _same("二十三番地", "23番地", "23")


def test_place_names_keep_their_numerals() -> None:
    assert address_key("東京都千代田区千代田1-1").startswith("東京都千代田区千代田")
    assert address_key("東京都八王子市元本郷町三丁目24番1号") == "東京都八王子市元本郷町3-24-1"
    assert address_key("三重県四日市市") == "三重県四日市市"
    # 番町 is a place-name word, not 番 + 町.
    assert address_key("千代田区一番町3番地") == "千代田区一番町3"
    # Counters other than 丁目/番/号 still mark numbers (札幌の条丁目).
    _same("札幌市中央区南三条西四丁目", "札幌市中央区南3条西4丁目")


def test_oaza_and_aza() -> None:
    _same(
        "○○郡△△町大字北山字南谷123番地の4",
        "○○郡△△町北山南谷123-4",
        "○○郡△△町大字北山南谷123-4",
    )


def test_kana_between_kanji() -> None:
    _same("霞が関1-2-3", "霞ヶ関一丁目2番3号", "霞ケ関1-2-3")
    _same("一ノ瀬1", "一の瀬1")


def test_itaiji_in_addresses() -> None:
    _same("渡邊町1", "渡辺町1")
    _same("廣島", "広島")


def test_katohgaki_is_kept_but_normalised() -> None:
    _same(
        "神保町2-1-2 ABCマンション 101号室",
        "神保町2丁目1番2号ABCマンション101",
        "神保町２－１－２　ＡＢＣマンション１０１号室",
    )
    # A room number right after the numbers stays separate from them.
    assert _same("神保町2-1-2-101", "神保町2丁目1番2号 101号室", "神保町2-1-2 101") == "神保町2-1-2-101"
    assert address_key("神保町2-1-2101") != address_key("神保町2-1-2 101")
    # ー inside katakana is a long vowel, not a dash.
    assert "コーポ" in address_key("神保町2-1-2コーポ山田")


def test_different_addresses_differ() -> None:
    assert address_key("神保町2-1-2") != address_key("神保町2-1-3")
    assert address_key("神保町2-1-2") != address_key("神保町2-12")


def test_split_prefecture() -> None:
    assert len(PREFECTURES) == 47
    assert split_prefecture("東京都千代田区") == ("東京都", "千代田区")
    assert split_prefecture("京都府京都市") == ("京都府", "京都市")
    assert split_prefecture("神奈川県横浜市") == ("神奈川県", "横浜市")
    assert split_prefecture("\u3000和歌山県和歌山市") == ("和歌山県", "和歌山市")
    assert split_prefecture("千代田区") == ("", "千代田区")


address_alphabet = "0123456789０１２一二三十百千丁目番地号室のノー－-―　 大字ケヶが霞関町ABCビル第条"


@given(st.text(alphabet=address_alphabet, max_size=25))
def test_address_key_is_idempotent(s: str) -> None:
    k = address_key(s)
    assert address_key(k) == k


@given(st.text(max_size=20))
def test_address_key_is_idempotent_on_any_text(s: str) -> None:
    k = address_key(s)
    assert address_key(k) == k


@pytest.mark.parametrize("s", ["", " ", "-", "号", "大字"])
def test_degenerate_inputs(s: str) -> None:
    assert isinstance(address_key(s), str)
