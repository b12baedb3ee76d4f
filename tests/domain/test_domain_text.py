from __future__ import annotations

import jaconv
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kojinbango.domain import itaiji
from kojinbango.domain.text import (
    fold_spaces,
    kana_search_key,
    kanji_number_value,
    kanji_numerals_to_arabic,
    name_key,
    nfkc,
    to_katakana,
)


def test_nfkc_and_fold_spaces() -> None:
    assert nfkc("ＡＢＣ１２３ｱｲｳ\u3000") == "ABC123アイウ "
    assert fold_spaces(" 山田\u3000太郎\t") == "山田太郎"


def test_to_katakana() -> None:
    assert to_katakana("やまだ はなこ") == "ヤマダ ハナコ"
    assert to_katakana("ﾔﾏﾀﾞ ﾊﾅｺ") == "ヤマダ ハナコ"
    assert to_katakana("がっこう ABC 山田") == "ガッコウ ABC 山田"


# --- kana_search_key: 住民記録システム標準仕様書 2.1.2 ------------------------------------------


def _same(*values: str) -> None:
    keys = {kana_search_key(v) for v in values}
    assert len(keys) == 1, dict(zip(values, map(kana_search_key, values), strict=True))


@pytest.mark.parametrize(
    "pair",
    [
        # spec examples: 清音、濁音、半濁音
        ("ヂ", "ジ"),
        ("ズ", "ヅ"),
        ("ワ", "ハ"),
        ("ヴァ", "バ"),
        ("ヴィ", "ビ"),
        ("ヴ", "ブ"),
        ("オ", "ヲ"),
        ("ヒ", "ピ"),
        # spec examples: 拗音、促音
        ("ッ", "ツ"),
        ("ャ", "ヤ"),
        ("ュ", "ユ"),
        ("ョ", "ヨ"),
    ],
)
def test_spec_examples(pair: tuple[str, str]) -> None:
    _same(*pair)


def test_voicing_small_kana_and_obsolete_kana_fold() -> None:
    _same("ガ", "カ")
    _same("パ", "バ", "ハ")
    _same("ヴェ", "ベ", "ヘ")
    _same("ヴォ", "ボ", "ホ")
    _same("ヰ", "イ")
    _same("ヱ", "エ")
    _same("ヮ", "ワ")
    _same("ァィゥェォ", "アイウエオ")
    _same("ヵ", "カ")
    _same("ヶ", "ケ")
    _same("キャ", "キヤ")
    _same("ガッコ", "カツコ")
    _same("ｶﾞ", "カ゛", "ガ", "か")


def test_long_vowels_and_dash_variants_are_ignored() -> None:
    _same("サトー", "サト", "サ―ト", "サ－ト", "サ‐ト", "ｻｰﾄ", "サ-ト", "サ‑ト", "サ–ト", "サ—ト")


def test_u_after_o_row() -> None:
    _same("トウキョウ", "トオキョオ", "トーキョー", "とうきょう", "ﾄｰｷｮｰ")
    _same("コウ", "コオ", "ゴウ")
    _same("サトウ", "サトオ", "サトー")
    # Only from the 2nd character: a leading ウ stays.
    assert kana_search_key("ウメ") == "ウメ"
    # Only after オ段: ユウコ keeps its ウ.
    assert kana_search_key("ユウコ") == "ユウコ"


def test_spaces_are_ignored() -> None:
    _same("ヤマダ タロウ", "ヤマダ\u3000タロウ", "ヤマダタロウ", " ヤマダ　タロウ ")
    # The ウ rule runs on the joined name, so spacing cannot change the key.
    _same("サトウ ウメ", "サトウウメ")


def test_hiragana_katakana_and_width_agree() -> None:
    _same("やまだ はなこ", "ヤマダ ハナコ", "ﾔﾏﾀﾞ ﾊﾅｺ")
    _same("すゞき", "スズキ", "すずき")


def test_other_characters_pass_through() -> None:
    assert kana_search_key("Smith ｊｏｈｎ") == "SMITHJOHN"
    assert kana_search_key("ジョン・スミス") == kana_search_key("ジョン スミス")
    assert kana_search_key("山田") == "山田"


kana_alphabet = st.sampled_from([chr(c) for c in range(0x30A1, 0x30FB)] + list("ーヽヾ "))
kana_text = st.lists(kana_alphabet, max_size=12).map("".join)


@given(kana_text)
def test_kana_key_is_idempotent(s: str) -> None:
    k = kana_search_key(s)
    assert kana_search_key(k) == k


@given(kana_text)
def test_kana_key_is_invariant_under_script_and_width(s: str) -> None:
    k = kana_search_key(s)
    assert kana_search_key(jaconv.kata2hira(s)) == k
    assert kana_search_key(jaconv.z2h(s, kana=True, ascii=False, digit=False)) == k
    assert kana_search_key(s.replace(" ", "\u3000")) == k


@given(st.text(max_size=20))
def test_kana_key_is_idempotent_on_any_text(s: str) -> None:
    k = kana_search_key(s)
    assert kana_search_key(k) == k


# --- name_key ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "group",
    [
        ("髙橋", "高橋"),
        ("山﨑", "山崎", "山嵜", "山碕"),
        ("渡邊", "渡邉", "渡辺", "渡边"),
        ("齋藤", "齊藤", "斎藤", "斉藤"),
        ("濱田", "浜田", "濵田"),
        ("廣田", "広田"),
        ("澤田", "沢田"),
        ("櫻井", "桜井"),
        ("島", "嶋", "嶌"),
        ("國", "国"),
        ("邨", "村"),
        ("冨", "富"),
        ("惠", "恵"),
        ("眞", "真"),
        ("德", "徳"),
        ("嶋田", "島田"),
        ("籠", "篭"),
        ("\ufa4f", "祐"),  # 祐 U+FA4F (NFKC folds it)
        ("吉", "\U00020bb7"),  # 𠮷 U+20BB7
        ("\ufa11", "崎"),  # 﨑 U+FA11 (NFKC does not fold it)
        ("\ufa19", "神"),  # 神 U+FA19
        ("佐々木", "佐佐木"),
        ("山田 太郎", "山田\u3000太郎", "山田太郎"),
        ("やまだ", "ヤマダ", "ﾔﾏﾀﾞ"),
        ("葛\U000e0100飾", "葛飾"),  # IVS stripped
        ("Smith John", "SMITH JOHN", "ＳＭＩＴＨ　ＪＯＨＮ"),
        ("淵上", "渕上"),
        ("槇", "槙"),
        ("龍", "竜"),
        ("藤", "籐", "籘", "䕨"),
    ],
)
def test_name_key_equal_groups(group: tuple[str, ...]) -> None:
    keys = {name_key(v) for v in group}
    assert len(keys) == 1, {v: name_key(v) for v in group}


def test_name_key_keeps_different_names_apart() -> None:
    assert name_key("高橋") != name_key("高槁")
    assert name_key("山田") != name_key("山口")
    # Kana are not fuzzily folded by name_key (that is kana_search_key's job).
    assert name_key("ヤマダ") != name_key("ヤマタ")


table_chars = "".join(itaiji.GROUPS) + "山田太郎あいうアイウｱｲｳabcＡＢ 々\u3000・"


@given(st.text(alphabet=table_chars, max_size=12))
def test_name_key_is_idempotent(s: str) -> None:
    k = name_key(s)
    assert name_key(k) == k


@given(st.text(max_size=12))
def test_name_key_is_idempotent_on_any_text(s: str) -> None:
    k = name_key(s)
    assert name_key(k) == k


# --- kanji numerals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("run", "value"),
    [
        ("一", 1),
        ("十", 10),
        ("十一", 11),
        ("二十", 20),
        ("二十三", 23),
        ("五十五", 55),
        ("百", 100),
        ("百五", 105),
        ("千二百三十四", 1234),
        ("二〇五", 205),
        ("一二三", 123),
        ("〇", 0),
    ],
)
def test_kanji_number_value(run: str, value: int) -> None:
    assert kanji_number_value(run) == value


def test_kanji_numerals_to_arabic() -> None:
    assert kanji_numerals_to_arabic("昭和五十五年四月一日") == "昭和55年4月1日"
    with pytest.raises(ValueError):
        kanji_number_value("元")
