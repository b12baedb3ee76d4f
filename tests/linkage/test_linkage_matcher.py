"""The matcher's rule, person by person: links only on a unique 氏名+生年月日+住所 agreement."""

from __future__ import annotations

import datetime as dt

import pytest

from kojinbango.municipality.addressee.matcher import (
    R_KANA,
    R_NAMESAKE,
    R_REJECTED,
    R_SEVERAL,
    Keys,
    Matcher,
    person_facts,
    record_facts,
    street_part,
)

K = Keys(("東京都", "千代田区"))
HOME = "東京都千代田区丸の内二丁目1番2号"
D = dt.date(1980, 4, 1)


def person(
    pid, fam="高橋", given="太郎", fk="タカハシ", gk="タロウ", birth=D, sex=1, addresses=(HOME,), former=()
):
    names = [(fam, given), *former]
    kanas = [(fk, gk)] + [("", "")] * len(former)
    return person_facts(K, pid, names, kanas, birth, sex, list(addresses))


def rec(name="高橋　太郎", kana="タカハシ　タロウ", birth=D, sex=1, address=HOME):
    return record_facts(K, name, kana, birth, sex, address)


def test_unique_agreement_on_all_four_links() -> None:
    m = Matcher([person(1), person(2, given="花子", gk="ハナコ", sex=2)])
    d = m.decide(rec())
    assert (d.outcome, d.pid) == ("link", 1)


@pytest.mark.parametrize(
    "variant",
    [
        dict(name="髙橋太郎"),  # 異体字, no space
        dict(kana="たかはし たろう"),  # hiragana
        dict(kana="ﾀｶﾊｼ ﾀﾛｳ"),  # half-width
        dict(kana=""),  # no furigana
        dict(address="千代田区丸の内2-1-2"),  # hyphens, no prefecture
        dict(address="丸の内２丁目１番地２号　丸の内ビル101"),  # no city, full-width, 方書
        dict(address="東京都千代田区丸の内二丁目1-2"),
        dict(sex=2),  # 性別 wrong: 氏名・生年月日・住所 still identify (3情報)
    ],
)
def test_normalised_variants_still_link(variant: dict) -> None:
    m = Matcher([person(1)])
    assert m.decide(rec(**variant)).outcome == "link"


def test_name_alone_never_links() -> None:
    m = Matcher([person(1)])
    d = m.decide(rec(birth=dt.date(1981, 7, 9), address="東京都千代田区神田神保町一丁目5番地"))
    assert d.outcome != "link"


def test_name_and_birth_without_address_go_to_review() -> None:
    """The 2023 failure: 氏名 + 生年月日 (+ 性別) accepted without 住所."""
    m = Matcher([person(1)])
    d = m.decide(rec(address="東京都千代田区神田神保町一丁目5番地"))
    assert d.outcome == "review" and d.candidates[0].pid == 1


def test_same_name_same_birthday_at_one_address_is_never_auto_linked() -> None:
    m = Matcher([person(1, addresses=(HOME,)), person(2, addresses=(HOME,))])
    for r in (rec(), rec(address=HOME + "　101"), rec(kana="")):
        d = m.decide(r)
        assert d.outcome == "review" and R_SEVERAL in d.reasons
        assert {c.pid for c in d.candidates} == {1, 2}


def test_namesake_elsewhere_blocks_auto_link() -> None:
    m = Matcher([person(1), person(2, addresses=("東京都千代田区神田神保町一丁目5番地",))])
    d = m.decide(rec())
    assert d.outcome == "review" and R_NAMESAKE in d.reasons


def test_twins_are_never_linked_to_each_other() -> None:
    twins = [
        person(1, given="翔太", gk="ショウタ"),
        person(2, given="翔平", gk="ショウヘイ"),
    ]
    m = Matcher(twins)
    assert m.decide(rec(name="高橋翔太", kana="タカハシショウタ")).pid == 1
    assert m.decide(rec(name="高橋翔平", kana="タカハシショウヘイ")).pid == 2
    # a twin's record with the given name left out or mistyped is never given to the other twin
    for name in ("高橋", "高橋翔", "高橋翔大"):
        d = m.decide(rec(name=name, kana=""))
        assert d.outcome != "link"


def test_history_counts_as_agreeing() -> None:
    moved = person(1, addresses=("東京都千代田区神田神保町一丁目5番地", HOME))
    married = person(2, fam="佐藤", given="花子", fk="サトウ", gk="ハナコ", sex=2, former=[("鈴木", "花子")])
    m = Matcher([moved, married])
    assert m.decide(rec()).pid == 1  # stale address from the history
    assert m.decide(rec(name="鈴木花子", kana="", sex=2)).pid == 2  # maiden name from the history


def test_kana_that_contradicts_goes_to_review() -> None:
    m = Matcher([person(1)])
    d = m.decide(rec(kana="スズキ　ジロウ"))
    assert d.outcome == "review" and R_KANA in d.reasons


def test_staff_rejection_is_honoured() -> None:
    m = Matcher([person(1)])
    d = m.decide(rec(), rejected=[1])
    assert d.outcome != "link" and R_REJECTED in d.reasons


def test_typo_goes_to_review_with_reasons() -> None:
    m = Matcher([person(1), person(2, given="花子", gk="ハナコ", sex=2)])
    d = m.decide(rec(name="高橋大郎"))
    assert d.outcome == "review" and d.candidates[0].pid == 1
    assert d.candidates[0].levels["name"] == "similar"
    d = m.decide(rec(birth=dt.date(1980, 4, 7)))
    assert d.outcome == "review" and d.candidates[0].levels["birth"] == "similar"


def test_no_candidate_is_none() -> None:
    m = Matcher([person(1)])
    assert m.decide(rec(name="山田花子", kana="", birth=dt.date(1990, 1, 1), sex=2)).outcome == "none"


def test_incremental_add() -> None:
    m = Matcher([person(1)])
    assert m.decide(rec(name="山田花子", kana="", sex=2)).outcome == "none"
    m.add(person(5, fam="山田", given="花子", fk="ヤマダ", gk="ハナコ", sex=2))
    assert m.decide(rec(name="山田花子", kana="", sex=2)).pid == 5


@pytest.mark.parametrize(
    ("raw", "street"),
    [
        ("東京都千代田区二番町1854番地23　二番町コーポ304号室", "東京都千代田区二番町1854番地23"),
        ("千代田区四番町40番地四番町マンションB104号室", "千代田区四番町40番地"),
        ("東京都 千代田区 丸の内 二丁目1番地", "東京都千代田区丸の内二丁目1番地"),
        ("1番地の2", "1番地の2"),
    ],
)
def test_street_part(raw: str, street: str) -> None:
    assert street_part(raw) == street


def test_is_local() -> None:
    assert K.is_local("丸の内2-1-2")
    assert K.is_local("千代田区丸の内2-1-2")
    assert not K.is_local("東京都新宿区西新宿二丁目8番1号")
    assert not K.is_local("新宿区西新宿2-8-1")
    assert not K.is_local("大阪府大阪市北区梅田1-1-1")
