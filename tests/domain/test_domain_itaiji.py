from __future__ import annotations

import unicodedata

import joyokanji
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kojinbango.domain import itaiji
from kojinbango.domain.itaiji import GROUPS, TABLE, build_table, fold, variants_of


def test_table_size() -> None:
    assert len(GROUPS) >= 150
    assert len(TABLE) >= 150


@pytest.mark.parametrize(
    ("variants", "canonical"),
    [
        ("髙", "高"),
        ("\ufa11嵜碕", "崎"),
        ("邊邉边", "辺"),
        ("齋齊斉", "斎"),
        ("濱濵滨", "浜"),
        ("廣", "広"),
        ("澤", "沢"),
        ("櫻", "桜"),
        ("嶋嶌", "島"),
        ("國", "国"),
        ("冨", "富"),
        ("惠", "恵"),
        ("眞", "真"),
        ("德", "徳"),
        ("\U00020bb7", "吉"),
        ("淵", "渕"),
        ("瀨", "瀬"),
        ("舘", "館"),
        ("槇", "槙"),
        ("彌", "弥"),
        ("藏", "蔵"),
        ("龍", "竜"),
        ("壽", "寿"),
        ("榮", "栄"),
        ("實", "実"),
        ("禮", "礼"),
        ("靜", "静"),
        ("條", "条"),
        ("圓", "円"),
        ("會", "会"),
        ("與", "与"),
        ("兒", "児"),
        ("萬", "万"),
        ("薗", "園"),
        ("籐籘䕨", "藤"),
        ("篭", "籠"),
        ("邨", "村"),
    ],
)
def test_required_entries(variants: str, canonical: str) -> None:
    for v in variants:
        assert fold(v) == canonical, v


def test_spec_examples_are_in_one_group() -> None:
    # 住民記録システム標準仕様書 2.1.2 異体字-inclusive search examples.
    assert {"辺", "邊", "边", "邉"} <= variants_of("辺")
    assert {"浜", "濱", "濵", "滨"} <= variants_of("浜")
    assert {"藤", "䕨", "籘", "籐"} <= variants_of("藤")
    assert variants_of("邉") == variants_of("辺")


def test_variants_of_unknown_character() -> None:
    assert variants_of("山") == frozenset({"山"})


def test_every_character_in_one_group_and_single_codepoint() -> None:
    seen: set[str] = set()
    for group in GROUPS:
        assert len(group) >= 2, group
        for ch in group:
            assert len(ch) == 1
            assert ch not in seen, ch
            seen.add(ch)


def test_no_entry_is_already_folded_by_nfkc() -> None:
    for group in GROUPS:
        for ch in group:
            assert unicodedata.normalize("NFKC", ch) == ch, f"{ch} U+{ord(ch):04X} is dead: NFKC folds it"


def test_canonical_forms_agree_with_joyokanji() -> None:
    for group in GROUPS:
        canonical = group[0]
        assert joyokanji.convert(canonical, variants=True) == canonical, group
        for v in group[1:]:
            assert fold(joyokanji.convert(v, variants=True)) == canonical, (group, v)


def test_build_table_rejects_duplicates() -> None:
    with pytest.raises(ValueError):
        build_table(["高髙", "髙x"])
    assert build_table(["AB", "CD"]) == {"B": "A", "D": "C"}


@given(st.text(alphabet="".join(GROUPS) + "山田あア1 ", max_size=20))
def test_fold_is_idempotent(s: str) -> None:
    assert fold(fold(s)) == fold(s)
    assert itaiji.fold(s) == "".join(TABLE.get(c, c) for c in s)
