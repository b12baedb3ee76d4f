"""住基ネット lookups: a person only when all four 情報 (or 氏名・生年月日・住所) agree; never a first hit."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from kojinbango.common.db import Database
from kojinbango.jlis.numbering import NumberGenerator
from kojinbango.jlis.service import JlisService


@pytest.fixture()
def jlis(tmp_path: Path) -> JlisService:
    db = Database(f"sqlite:///{tmp_path}/jlis.db", "kojinbango.jlis:migrations")
    return JlisService(db, NumberGenerator(b"k" * 32))


def _person(
    code: str, family: str, given: str, birth: str, sex: int, address: str, kana=("タカハシ", "イチロウ")
):
    return {
        "resident_code": code,
        "my_number": None,
        "family_name": family,
        "given_name": given,
        "family_kana": kana[0],
        "given_kana": kana[1],
        "birth_date": birth,
        "sex": sex,
        "address": address,
        "status": "current",
        "removal_reason": None,
    }


def _load(jlis: JlisService, people: list[dict]) -> list[str]:
    codes = jlis.issue_bundle("131016", len(people), "req-lookup-test")
    changes = []
    for i, (p, code) in enumerate(zip(people, codes, strict=True)):
        changes.append(
            {
                "source": "131016",
                "seq": i + 1,
                "event_type": "転入",
                "event_date": "2020-01-01",
                "record": {**p, "resident_code": code},
            }
        )
    assert jlis.apply_changes(changes) == len(people)
    assert jlis.apply_changes(changes) == 0  # idempotent per (source, seq)
    return codes


def test_variants_of_the_same_person_are_found(jlis: JlisService) -> None:
    codes = _load(
        jlis, [_person("", "髙橋", "一郎", "1980-04-01", 1, "東京都千代田区神田神保町二丁目1番地2号")]
    )
    r = jlis.lookup_by_attributes("高橋　一郎", dt.date(1980, 4, 1), 1, "東京都千代田区神田神保町2-1-2")
    assert r.status == "found" and r.record is not None and r.record.resident_code == codes[0]
    # 氏名・生年月日・住所 without 性別 also identifies the person.
    assert (
        jlis.lookup_by_attributes(
            "髙橋一郎", dt.date(1980, 4, 1), None, "東京都千代田区神田神保町２－１－２"
        ).status
        == "found"
    )


def test_three_facts_without_address_never_identify(jlis: JlisService) -> None:
    _load(jlis, [_person("", "髙橋", "一郎", "1980-04-01", 1, "東京都千代田区神田神保町二丁目1番地2号")])
    r = jlis.lookup_by_attributes("高橋一郎", dt.date(1980, 4, 1), 1, None)
    assert r.status == "insufficient" and r.record is None


def test_disagreeing_fact_is_not_found(jlis: JlisService) -> None:
    _load(jlis, [_person("", "髙橋", "一郎", "1980-04-01", 1, "東京都千代田区神田神保町二丁目1番地2号")])
    assert (
        jlis.lookup_by_attributes("高橋一郎", dt.date(1980, 4, 2), 1, "東京都千代田区神田神保町2-1-2").status
        == "not_found"
    )
    assert (
        jlis.lookup_by_attributes("高橋一郎", dt.date(1980, 4, 1), 2, "東京都千代田区神田神保町2-1-2").status
        == "not_found"
    )
    assert (
        jlis.lookup_by_attributes("高橋一朗", dt.date(1980, 4, 1), 1, "東京都千代田区神田神保町2-1-2").status
        == "not_found"
    )


def test_same_name_same_birthday_same_address_is_ambiguous(jlis: JlisService) -> None:
    addr = "東京都新宿区西新宿二丁目8番1号"
    _load(
        jlis,
        [
            _person("", "佐藤", "翔太", "2001-05-05", 1, addr),
            _person("", "佐藤", "翔太", "2001-05-05", 1, addr),
        ],
    )
    r = jlis.lookup_by_attributes("佐藤翔太", dt.date(2001, 5, 5), 1, addr)
    assert r.status == "ambiguous" and r.candidates == 2 and r.record is None


def test_lookup_by_number_and_code(jlis: JlisService) -> None:
    codes = _load(jlis, [_person("", "山﨑", "花子", "1990-01-01", 2, "東京都千代田区丸の内一丁目1番1号")])
    numbers = jlis.generate_numbers("131016", codes)
    change = {
        "source": "131016",
        "seq": 99,
        "event_type": "個人番号の職権記載",
        "event_date": "2026-01-01",
        "record": {
            **_person(codes[0], "山﨑", "花子", "1990-01-01", 2, "東京都千代田区丸の内一丁目1番1号"),
            "my_number": numbers[codes[0]],
        },
    }
    jlis.apply_changes([change])
    assert jlis.lookup_by_number(numbers[codes[0]]).record.resident_code == codes[0]
    assert jlis.lookup_by_code(codes[0]).record.my_number == numbers[codes[0]]


def test_numbers_are_stable_and_a_change_is_new(jlis: JlisService) -> None:
    codes = jlis.issue_bundle("131016", 50, "req-number-test")
    first = jlis.generate_numbers("131016", codes)
    again = jlis.generate_numbers("131016", codes[:10])
    assert all(again[c] == first[c] for c in codes[:10])
    changed = jlis.change_number("131016", codes[0])
    assert changed not in first.values()
    assert (
        jlis.generate_numbers("131016", [codes[0]])[codes[0]] == changed
    )  # the current number is the new one
    assert jlis.counts()["numbers_issued"] == 51


def test_bundles_are_idempotent_and_disjoint(jlis: JlisService) -> None:
    a = jlis.issue_bundle("131016", 100, "req-a-000001")
    assert jlis.issue_bundle("131016", 100, "req-a-000001") == a
    b = jlis.issue_bundle("131041", 100, "req-b-000001")
    assert not set(a) & set(b) and len(set(a)) == 100


def test_address_matches_with_or_without_the_building(jlis: JlisService) -> None:
    person = _person(
        "", "髙橋", "一郎", "1980-04-01", 1, "東京都千代田区神田神保町二丁目1番地2号\u3000コーポ神保町201号室"
    )
    person["address_street"] = "東京都千代田区神田神保町二丁目1番地2号"
    _load(jlis, [person])
    for asked in (
        "東京都千代田区神田神保町2-1-2",
        "東京都千代田区神田神保町2-1-2 コーポ神保町201",
        "東京都千代田区神田神保町二丁目1番地2号\u3000コーポ神保町201号室",
    ):
        assert jlis.lookup_by_attributes("高橋一郎", dt.date(1980, 4, 1), 1, asked).status == "found", asked
    # A different street number is a different address, building or not.
    assert (
        jlis.lookup_by_attributes("高橋一郎", dt.date(1980, 4, 1), 1, "東京都千代田区神田神保町2-1-20").status
        == "not_found"
    )
