"""Japan time: "today" at the counter is the JST date, never the UTC or the machine's date."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from kojinbango.domain import jst


def test_between_midnight_and_nine_jst_the_day_is_already_tomorrow() -> None:
    early = dt.datetime(2026, 11, 27, 15, 30, tzinfo=dt.UTC)  # 00:30 on the 28th in Tokyo
    assert jst.today_jst(early) == dt.date(2026, 11, 28)
    assert jst.today_jst(early.replace(tzinfo=None)) == dt.date(2026, 11, 28)  # stored naive UTC
    assert jst.today_jst(dt.datetime(2026, 11, 27, 14, 59, tzinfo=dt.UTC)) == dt.date(2026, 11, 27)


def test_display_shifts_the_date_with_the_hour() -> None:
    # the staff pages once shifted only the hour: 23:10 UTC showed as the 27th at 08:10
    assert jst.jst_text(dt.datetime(2026, 11, 27, 23, 10, 5), "%Y-%m-%d %H:%M:%S") == "2026-11-28 08:10:05"
    assert jst.jst_text(dt.datetime(2026, 12, 31, 15, 0)) == "2027-01-01 00:00"


@given(st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1)))
def test_today_is_the_utc_date_nine_hours_on(moment: dt.datetime) -> None:
    assert jst.today_jst(moment) == (moment + dt.timedelta(hours=9)).date()
    assert jst.in_jst(moment).utcoffset() == dt.timedelta(hours=9)


def test_iso_text_from_the_network_is_shown_in_japan_time() -> None:
    assert jst.jst_text("2026-11-27T15:30:00Z") == "2026-11-28 00:30"
    assert jst.jst_text("2026-11-27T15:30:00") == "2026-11-28 00:30"  # naive is UTC, as stored
    assert jst.jst_text(dt.datetime(2026, 11, 27, 1, 0)) == "2026-11-27 10:00"
    assert jst.jst_text(None) == "" and jst.jst_text("") == ""
