"""One clock: moving ``domain.clock.source`` moves the time every organisation stamps and dates by."""

from __future__ import annotations

import datetime as dt
import importlib

import pytest

from kojinbango.domain import clock
from kojinbango.domain.jst import today_jst

MOVED = dt.datetime(2031, 12, 31, 15, 30, tzinfo=dt.UTC)  # 00:30 on 1 January 2032 in Japan

# each service's own name for "now, as stored" (naive UTC)
STAMPERS = [
    ("kojinbango.network.core", "now"),
    ("kojinbango.network.log", "now"),
    ("kojinbango.intermediate.service", "now"),
    ("kojinbango.agency.service", "now"),
    ("kojinbango.municipality.linkage.service", "now"),
    ("kojinbango.jlis.service", "_now"),
    ("kojinbango.jlis.cards.centre", "now"),
    ("kojinbango.prefecture.service", "_now"),
    ("kojinbango.municipality.register.service", "now"),
    ("kojinbango.municipality.register.notices", "now"),
    ("kojinbango.municipality.addressee.service", "now"),
    ("kojinbango.municipality.business.service", "now"),
    ("kojinbango.municipality.business.applications", "_now"),
    ("kojinbango.municipality.outreach.service", "now"),
    ("kojinbango.municipality.staff.service", "now"),
    ("kojinbango.portal.service", "now"),
    ("kojinbango.portal.records", "_now"),
    ("kojinbango.portal.inbox", "_now"),
    ("kojinbango.relying_party.service", "now"),
]


@pytest.mark.parametrize(("module", "name"), STAMPERS)
def test_every_service_stamps_by_the_one_clock(
    module: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stamp = getattr(importlib.import_module(module), name)
    monkeypatch.setattr(clock, "source", lambda: MOVED)
    assert stamp() == dt.datetime(2031, 12, 31, 15, 30)  # naive UTC, as stored
    monkeypatch.setattr(clock, "source", clock.system_clock)
    assert abs(stamp() - dt.datetime.now(dt.UTC).replace(tzinfo=None)) < dt.timedelta(seconds=5)


def test_dates_and_documents_follow_the_same_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    from kojinbango.common import documents

    monkeypatch.setattr(clock, "source", lambda: MOVED)
    assert today_jst() == dt.date(2032, 1, 1)  # already the new year in Japan
    assert clock.now_aware() == MOVED
    assert documents._now() == "2031-12-31T15:30:00+00:00"
