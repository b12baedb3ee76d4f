"""和暦 (Japanese era) dates.

Japanese residents' 生年月日 appear on the 住民票 in 和暦 (DOMAIN.md §7.2) and the standard spec's
basic search accepts both 和暦 and 西暦, so dates are stored as ``datetime.date`` and converted at the
edges.

Gregorian only from 1873-01-01 (明治6年1月1日): before that Japan used the lunisolar calendar, so a
明治5年 month/day is not the Gregorian month/day and cannot be converted with an era offset. Dates
before 1873 are refused in 和暦 rather than silently mistranslated. For the same reason the start
date chosen for 明治 only matters as a label: 1868-01-25 is the Gregorian date of 明治元年1月1日 (the
改元 of 1868-10-23 was made retroactive to the first day of 慶応4年).
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Final

from kojinbango.domain.text import kanji_numerals_to_arabic

__all__ = [
    "ERAS",
    "GREGORIAN_ADOPTION",
    "DateParseError",
    "Era",
    "era_of",
    "format_seireki",
    "parse_date",
    "parse_date_range",
    "to_wareki",
]


class DateParseError(ValueError):
    """A date string could not be read; the message says what is wrong (dates are not identifiers,
    so it may quote the text)."""


@dataclass(frozen=True, slots=True)
class Era:
    name: str  # 昭和
    letter: str  # S
    start: date
    end: date | None  # last day; None for the current era

    def year_of(self, d: date) -> int:
        return d.year - self.start.year + 1


ERAS: Final[tuple[Era, ...]] = (
    Era("明治", "M", date(1868, 1, 25), date(1912, 7, 29)),
    Era("大正", "T", date(1912, 7, 30), date(1926, 12, 24)),
    Era("昭和", "S", date(1926, 12, 25), date(1989, 1, 7)),
    Era("平成", "H", date(1989, 1, 8), date(2019, 4, 30)),
    Era("令和", "R", date(2019, 5, 1), None),
)

GREGORIAN_ADOPTION: Final = date(1873, 1, 1)

_ERA_BY_LABEL: Final[dict[str, Era]] = {}
for _era in ERAS:
    _ERA_BY_LABEL[_era.name] = _era
    _ERA_BY_LABEL[_era.name[0]] = _era  # 昭55.4.1
    _ERA_BY_LABEL[_era.letter] = _era
    _ERA_BY_LABEL[_era.letter.lower()] = _era


def era_of(d: date) -> Era:
    """The era ``d`` falls in; ValueError before 明治."""
    for era in reversed(ERAS):
        if d >= era.start:
            return era
    raise ValueError(f"{d.isoformat()} is before 明治 (the first supported era)")


def _wareki_text(era: Era, year: int, month: int, day: int) -> str:
    y = "元" if year == 1 else str(year)
    return f"{era.name}{y}年{month}月{day}日"


def to_wareki(d: date) -> str:
    """``date(1980, 4, 1)`` → "昭和55年4月1日"; the first year of an era is 元年 (令和元年5月1日).

    Raises ValueError for dates before 1873-01-01 (lunisolar calendar, see module docstring).
    """
    if d < GREGORIAN_ADOPTION:
        raise ValueError(
            f"{d.isoformat()} is before 1873-01-01 (明治6年1月1日), when Japan adopted the Gregorian "
            "calendar; earlier 和暦 dates are lunisolar and cannot be derived from a Gregorian date"
        )
    era = era_of(d)
    return _wareki_text(era, era.year_of(d), d.month, d.day)


def format_seireki(d: date) -> str:
    """``date(1980, 4, 1)`` → "1980-04-01"."""
    return d.isoformat()


_SEIREKI_RE: Final = re.compile(
    r"(?:西暦)?(?P<y>\d{4})"
    r"(?:年(?P<m1>\d{1,2})月(?P<d1>\d{1,2})日"
    r"|(?P<sep>[-/.])(?P<m2>\d{1,2})(?P=sep)(?P<d2>\d{1,2})"
    r"|(?P<m3>\d{2})(?P<d3>\d{2}))"
)
_WAREKI_RE: Final = re.compile(
    r"(?P<era>[^\d元]+?)(?P<y>元|\d{1,3})"
    r"(?:年(?P<m1>\d{1,2})月(?P<d1>\d{1,2})日"
    r"|(?P<sep>[-/.])(?P<m2>\d{1,2})(?P=sep)(?P<d2>\d{1,2}))"
)
_FORMS: Final = "西暦 like 1980-04-01, 1980/4/1 or 19800401, or 和暦 like 昭和55年4月1日 or S55.4.1"


def _make_date(text: str, year: int, month: int, day: int) -> date:
    if not 1 <= month <= 12:
        raise DateParseError(f"{text!r}: month {month} does not exist (月が不正です)")
    try:
        return date(year, month, day)
    except ValueError:
        raise DateParseError(
            f"{text!r}: {month}月{day}日 does not exist in {year} (存在しない日付です)"
        ) from None


def parse_date(s: str) -> date:
    """Read a 西暦 or 和暦 date.

    西暦: "1980-04-01", "1980/4/1", "1980.4.1", "19800401", "1980年4月1日".
    和暦: "昭和55年4月1日", "平成元年1月8日", "S55.4.1", "H1.1.8", "R6.2.29", "昭55.4.1", "㍼55.4.1".
    Full-width digits, spaces and kanji numerals (昭和五十五年四月一日) are accepted. A 和暦 date
    must lie inside its era: 平成32年 and 昭和64年1月8日 do not exist (the era had ended).
    """
    if not isinstance(s, str):
        raise TypeError(f"expected str, got {type(s).__name__}")
    # NFKC: full-width digits/letters → ASCII, ㍼/㋿ → 昭和/令和, full-width separators → ASCII.
    text = kanji_numerals_to_arabic("".join(unicodedata.normalize("NFKC", s).split()))
    if not text:
        raise DateParseError("empty date (日付が入力されていません)")

    m = _SEIREKI_RE.fullmatch(text)
    if m:
        month = m.group("m1") or m.group("m2") or m.group("m3")
        day = m.group("d1") or m.group("d2") or m.group("d3")
        return _make_date(s, int(m.group("y")), int(month), int(day))

    m = _WAREKI_RE.fullmatch(text)
    if not m:
        raise DateParseError(f"{s!r}: unreadable date; expected {_FORMS} (日付の形式が不正です)")
    label = m.group("era")
    era = _ERA_BY_LABEL.get(label)
    if era is None:
        raise DateParseError(
            f"{s!r}: unknown era {label!r}; known: "
            + ", ".join(f"{e.name} ({e.letter})" for e in ERAS)
            + " (元号が不正です)"
        )
    year = 1 if m.group("y") == "元" else int(m.group("y"))
    if year < 1:
        raise DateParseError(f"{s!r}: era year must be 元 or at least 1 (年が不正です)")
    month = int(m.group("m1") or m.group("m2"))
    day = int(m.group("d1") or m.group("d2"))
    if era.name == "明治" and year < 6:
        raise DateParseError(
            f"{s!r}: 明治{year}年 predates the Gregorian calendar (adopted 明治6年1月1日 = 1873-01-01); "
            "lunisolar dates are not supported (太陽暦採用前の日付です)"
        )
    d = _make_date(s, era.start.year + year - 1, month, day)
    if d < era.start:
        raise DateParseError(
            f"{s!r}: {era.name} began on {era.start.isoformat()} "
            f"({_wareki_text(era, 1, era.start.month, era.start.day)}); this date is before it "
            "(元号の期間外です)"
        )
    if era.end is not None and d > era.end:
        last = _wareki_text(era, era.year_of(era.end), era.end.month, era.end.day)
        raise DateParseError(
            f"{s!r}: {era.name} ended on {era.end.isoformat()} ({last}); this date is after it "
            "(元号の期間外です)"
        )
    return d


_PARTIAL_SEIREKI_RE: Final = re.compile(r"(?:西暦)?(?P<y>\d{4})(?:年|[-/.])?(?:(?P<m>\d{1,2})(?:月|[-/.])?)?")
_PARTIAL_WAREKI_RE: Final = re.compile(
    r"(?P<era>[^\d元]+?)(?P<y>元|\d{1,3})(?:年|[-/.])?(?:(?P<m>\d{1,2})(?:月|[-/.])?)?"
)


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def parse_date_range(s: str) -> tuple[date, date]:
    """Read a whole date, or only a year or a year and month, as the first and last day it covers.

    The standard spec's search lets staff type what the applicant remembers: "昭和55年" is
    1980-01-01..1980-12-31, "S55.4" is April 1980, "1980-04-01" a single day.  A 和暦 year or month
    is clipped to its era ("平成元年" starts on 1989-01-08, "昭和64年" ends on 1989-01-07); an era
    year or month lying wholly outside the era is refused like a whole date would be.
    """
    try:
        d = parse_date(s)
        return d, d
    except DateParseError as whole:
        text = kanji_numerals_to_arabic("".join(unicodedata.normalize("NFKC", s).split()))
        if not text:
            raise
        m = _PARTIAL_SEIREKI_RE.fullmatch(text)
        era: Era | None = None
        if m is None:
            m = _PARTIAL_WAREKI_RE.fullmatch(text)
            if m is None:
                raise whole from None
            era = _ERA_BY_LABEL.get(m.group("era"))
            if era is None:
                raise whole from None
        y = 1 if m.group("y") == "元" else int(m.group("y"))
        if era is not None and y < 1:
            raise DateParseError(f"{s!r}: era year must be 元 or at least 1 (年が不正です)") from None
        year = era.start.year + y - 1 if era is not None else y
        if year < GREGORIAN_ADOPTION.year:
            raise DateParseError(
                f"{s!r}: before 1873-01-01 (明治6年1月1日), when Japan adopted the Gregorian calendar "
                "(太陽暦採用前の日付です)"
            ) from None
        if m.group("m") is None:
            first, last = date(year, 1, 1), date(year, 12, 31)
        else:
            month = int(m.group("m"))
            if not 1 <= month <= 12:
                raise DateParseError(f"{s!r}: month {month} does not exist (月が不正です)") from None
            first, last = date(year, month, 1), _month_end(year, month)
        if era is not None:
            first, last = max(first, era.start), min(last, era.end or last)
            if first > last:
                raise DateParseError(
                    f"{s!r}: {era.name}{'元' if y == 1 else y}年 does not cover this period; {era.name} "
                    f"ran from {era.start.isoformat()}"
                    + (f" to {era.end.isoformat()}" if era.end else "")
                    + " (元号の期間外です)"
                ) from None
        return first, last
