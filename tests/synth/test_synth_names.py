"""Name tables: coverage, readings, variants, cohorts."""

from __future__ import annotations

import datetime
import re

from kojinbango.synth import PersonSpec, full_kana, full_name
from kojinbango.synth.names import cohort_for_year, given_name_table, surname_table

KATAKANA = re.compile(r"^[\u30a1-\u30f6\u30fc]+$")


def test_surname_table_size_and_readings() -> None:
    table = surname_table()
    bases = {s.base for s in table}
    assert len(bases) >= 300
    assert all(KATAKANA.match(s.kana) for s in table)
    assert all(s.weight > 0 for s in table)
    by_base: dict[str, float] = {}
    for s in table:
        by_base[s.base] = by_base.get(s.base, 0.0) + s.weight
    top = sorted(by_base, key=lambda b: -by_base[b])[:4]
    assert top == ["佐藤", "鈴木", "高橋", "田中"]


def test_surname_variants_present_with_base_readings() -> None:
    pairs = {(s.kanji, s.kana) for s in surname_table()}
    expected = {
        ("髙橋", "タカハシ"), ("山\ufa11", "ヤマザキ"), ("山嵜", "ヤマザキ"), ("渡邊", "ワタナベ"),
        ("渡邉", "ワタナベ"), ("齋藤", "サイトウ"), ("齊藤", "サイトウ"), ("濱田", "ハマダ"),
        ("廣田", "ヒロタ"), ("澤田", "サワダ"), ("櫻井", "サクライ"), ("嶋田", "シマダ"),
        ("\U00020bb7田", "ヨシダ"),
    }  # fmt: skip
    assert expected <= pairs
    # variants stay rare relative to their base spelling
    w = {(s.kanji, s.kana): s.weight for s in surname_table()}
    assert w[("\U00020bb7田", "ヨシダ")] < 0.01 * w[("吉田", "ヨシダ")]
    assert w[("髙橋", "タカハシ")] < 0.2 * w[("高橋", "タカハシ")]


def test_surnames_with_two_readings() -> None:
    readings: dict[str, set[str]] = {}
    for s in surname_table():
        readings.setdefault(s.kanji, set()).add(s.kana)
    assert readings["中島"] == {"ナカジマ", "ナカシマ"}
    assert readings["山崎"] == {"ヤマザキ", "ヤマサキ"}
    assert readings["東"] == {"アズマ", "ヒガシ"}


def test_given_names_per_sex_and_readings() -> None:
    table = given_name_table()
    for sex in (1, 2):
        distinct = {(g.kanji, g.kana) for g in table if g.sex == sex}
        assert len(distinct) >= 190, sex
    assert all(KATAKANA.match(g.kana) for g in table)
    kana = {g.kana for g in table}
    assert {"ショウタ", "ユウキ", "リョウ", "キョウコ"} <= kana  # small kana / long vowels


def test_given_names_have_cohort_flavour() -> None:
    by = {(g.kanji, g.sex): g.cohort for g in given_name_table()}
    assert by[("和子", 2)] == 1 and by[("清", 1)] == 1
    assert by[("陽菜", 2)] == 4 and by[("蓮", 1)] == 4 and by[("結愛", 2)] == 4
    assert cohort_for_year(1935) == 1 and cohort_for_year(1946) == 2
    assert cohort_for_year(1971) == 3 and cohort_for_year(2020) == 4


def test_full_name_uses_ideographic_space() -> None:
    p = PersonSpec(
        "髙橋",
        "翔太",
        "タカハシ",
        "ショウタ",
        datetime.date(1990, 1, 2),
        1,
        "世帯主",
        datetime.date(1990, 1, 2),
    )
    assert full_name(p) == "髙橋\u3000翔太"
    assert full_kana(p) == "タカハシ\u3000ショウタ"
