from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kojinbango.domain.wareki import (
    ERAS,
    GREGORIAN_ADOPTION,
    DateParseError,
    era_of,
    format_seireki,
    parse_date,
    parse_date_range,
    to_wareki,
)


@pytest.mark.parametrize(
    ("d", "text"),
    [
        (date(1980, 4, 1), "昭和55年4月1日"),
        (date(2019, 5, 1), "令和元年5月1日"),
        (date(2019, 4, 30), "平成31年4月30日"),
        (date(1989, 1, 7), "昭和64年1月7日"),
        (date(1989, 1, 8), "平成元年1月8日"),
        (date(1926, 12, 24), "大正15年12月24日"),
        (date(1926, 12, 25), "昭和元年12月25日"),
        (date(1912, 7, 29), "明治45年7月29日"),
        (date(1912, 7, 30), "大正元年7月30日"),
        (date(1873, 1, 1), "明治6年1月1日"),
        (date(2024, 2, 29), "令和6年2月29日"),
    ],
)
def test_to_wareki(d: date, text: str) -> None:
    assert to_wareki(d) == text
    assert parse_date(text) == d


def test_era_boundaries_are_contiguous() -> None:
    for prev, nxt in zip(ERAS, ERAS[1:], strict=False):
        assert prev.end is not None
        assert prev.end + timedelta(days=1) == nxt.start
    assert ERAS[-1].end is None
    assert [e.start for e in ERAS] == [
        date(1868, 1, 25),
        date(1912, 7, 30),
        date(1926, 12, 25),
        date(1989, 1, 8),
        date(2019, 5, 1),
    ]
    assert era_of(date(2019, 5, 1)).name == "令和"


def test_to_wareki_refuses_lunisolar_dates() -> None:
    with pytest.raises(ValueError, match="1873"):
        to_wareki(date(1872, 12, 31))


@pytest.mark.parametrize(
    "text",
    [
        "1980-04-01",
        "1980/4/1",
        "1980.4.1",
        "19800401",
        "1980年4月1日",
        "１９８０－０４－０１",
        "１９８０/４/１",
        " 1980-04-01\u3000",
        "昭和55年4月1日",
        "昭和５５年４月１日",
        "昭和 55年 4月 1日",
        "昭和五十五年四月一日",
        "S55.4.1",
        "s55.4.1",
        "S55/4/1",
        "S55-4-1",
        "Ｓ５５．４．１",
        "昭55.4.1",
        "\u337c55.4.1",  # ㍼ (square 昭和)
    ],
)
def test_parse_date_forms(text: str) -> None:
    assert parse_date(text) == date(1980, 4, 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("平成元年1月8日", date(1989, 1, 8)),
        ("H1.1.8", date(1989, 1, 8)),
        ("H元.1.8", date(1989, 1, 8)),
        ("R6.2.29", date(2024, 2, 29)),
        ("令和6年2月29日", date(2024, 2, 29)),
        ("令和元年5月1日", date(2019, 5, 1)),
        ("\u32ff6.2.29", date(2024, 2, 29)),  # ㋿ (square 令和)
        ("T1.7.30", date(1912, 7, 30)),
        ("M45.7.29", date(1912, 7, 29)),
    ],
)
def test_parse_wareki(text: str, expected: date) -> None:
    assert parse_date(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("平成32年1月1日", "平成 ended on 2019-04-30"),
        ("H32.1.1", "平成 ended on 2019-04-30"),
        ("昭和64年1月8日", "昭和 ended on 1989-01-07"),
        ("平成元年1月7日", "平成 began on 1989-01-08"),
        ("令和元年4月30日", "令和 began on 2019-05-01"),
        ("昭和55年2月30日", "2月30日 does not exist in 1980"),
        ("R5.2.29", "2月29日 does not exist in 2023"),
        ("1980-02-30", "does not exist"),
        ("1980-13-01", "month 13"),
        ("X55.4.1", "unknown era 'X'"),
        ("天保3年1月1日", "unknown era '天保'"),
        ("明治5年12月2日", "Gregorian"),
        ("昭和0年1月1日", "元 or at least 1"),
        ("hello", "unreadable"),
        ("1980-4/1", "unreadable"),
        ("80/4/1", "unreadable"),
        ("昭和55年4月", "unreadable"),
        ("", "empty"),
    ],
)
def test_parse_date_errors(text: str, fragment: str) -> None:
    with pytest.raises(DateParseError) as exc:
        parse_date(text)
    assert fragment in str(exc.value)
    assert isinstance(exc.value, ValueError)


def test_format_seireki() -> None:
    assert format_seireki(date(1980, 4, 1)) == "1980-04-01"
    assert parse_date(format_seireki(date(1873, 1, 1))) == date(1873, 1, 1)


@given(st.dates(min_value=GREGORIAN_ADOPTION, max_value=date(2100, 12, 31)))
def test_round_trip_hypothesis(d: date) -> None:
    assert parse_date(to_wareki(d)) == d
    assert parse_date(format_seireki(d)) == d


def test_round_trip_every_day_1873_to_2100() -> None:
    d = GREGORIAN_ADOPTION
    end = date(2100, 12, 31)
    one = timedelta(days=1)
    while d <= end:
        assert parse_date(to_wareki(d)) == d, d
        d += one


@pytest.mark.parametrize(
    ("text", "first", "last"),
    [
        ("令和5年4月1日", date(2023, 4, 1), date(2023, 4, 1)),
        ("R5.4.1", date(2023, 4, 1), date(2023, 4, 1)),
        ("昭和55年", date(1980, 1, 1), date(1980, 12, 31)),
        ("S55.4", date(1980, 4, 1), date(1980, 4, 30)),
        ("昭和五十五年四月", date(1980, 4, 1), date(1980, 4, 30)),
        ("平成元年", date(1989, 1, 8), date(1989, 12, 31)),  # clipped to the era
        ("昭和64年", date(1989, 1, 1), date(1989, 1, 7)),
        ("令和元年", date(2019, 5, 1), date(2019, 12, 31)),
        ("1980", date(1980, 1, 1), date(1980, 12, 31)),
        ("1980-02", date(1980, 2, 1), date(1980, 2, 29)),
        ("2023/2", date(2023, 2, 1), date(2023, 2, 28)),
        ("２０２３年２月", date(2023, 2, 1), date(2023, 2, 28)),
    ],
)
def test_parse_date_range(text: str, first: date, last: date) -> None:
    assert parse_date_range(text) == (first, last)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("昭和64年2月", "元号の期間外"),
        ("平成32年", "元号の期間外"),
        ("1980-13", "month 13"),
        ("1872", "Gregorian"),
        ("0000", "Gregorian"),
        ("明治5年", "Gregorian"),
        ("令和", "unreadable"),
        ("X5", "unreadable"),
        ("", "empty"),
        ("R5.2.29", "does not exist"),  # a whole date keeps its own error
    ],
)
def test_parse_date_range_errors(text: str, fragment: str) -> None:
    with pytest.raises(DateParseError) as exc:
        parse_date_range(text)
    assert fragment in str(exc.value)


@given(st.dates(min_value=GREGORIAN_ADOPTION, max_value=date(2100, 12, 31)))
def test_range_of_a_year_or_month_contains_the_day(d: date) -> None:
    era = era_of(d)
    y = era.year_of(d)
    label = "元" if y == 1 else str(y)
    for text in (
        f"{era.name}{label}年",
        f"{era.letter}{y}.{d.month}",
        f"{d.year}",
        f"{d.year}-{d.month:02d}",
    ):
        first, last = parse_date_range(text)
        assert first <= d <= last, text
        assert era_of(first) == era or not text.startswith((era.name, era.letter))
    assert parse_date_range(to_wareki(d)) == (d, d)
    # a 和暦 month never spills outside its era
    first, last = parse_date_range(f"{era.name}{label}年{d.month}月")
    assert era.start <= first and (era.end is None or last <= era.end)
