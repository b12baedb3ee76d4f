"""Japan time (日本標準時, UTC+9) for dates a resident or a counter sees.

Stored times are naive UTC; a 届出, a card's validity, an age or a deadline is dated in Japan
time.  Between 00:00 and 09:00 JST the UTC date is still yesterday, so "today" must never be
taken from the UTC clock (``now().date()``) or the machine's local zone (``date.today()``).
Every date here comes from the one clock, ``domain.clock``.
"""

from __future__ import annotations

import datetime as dt

from kojinbango.domain import clock

JST = dt.timezone(dt.timedelta(hours=9), "JST")


def today_jst(at: dt.datetime | None = None) -> dt.date:
    """The day it is in Japan at ``at`` (aware, or naive UTC as stored), by default now."""
    return in_jst(clock.now_aware() if at is None else at).date()


def in_jst(moment: dt.datetime) -> dt.datetime:
    """A stored naive-UTC (or aware) time as an aware Japan time, for display."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(JST)


def jst_text(value: dt.datetime | str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A stored time written in Japan time (date and hour both shifted, never one alone); it may
    come as ISO 8601 text (``…Z`` or naive UTC), as the network's records carry it.  Nothing for
    nothing.  The pages' ``jst`` filter (``common.i18n``)."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return in_jst(value).strftime(fmt)
