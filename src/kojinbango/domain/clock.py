"""The wall clock (時刻), read in one place.

Every organisation stores times as naive UTC (``utc_now``); the dates a resident or a counter sees
are Japan time (``domain.jst``, which reads this clock too).  Both read ``source``, so replacing it
moves every service's time at once — a test at 00:30 JST, or one that crosses a retention period.
Signature and nonce timestamps (``common.signing``, ``common.transport``) and certificates' validity
(the deployment's and JPKI's X.509, OCSP, CRLs, PAdES) stay on the system clock: other parties and
libraries check them against their own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable


def system_clock() -> dt.datetime:
    """The system's wall clock, aware UTC."""
    return dt.datetime.now(dt.UTC)


source: Callable[[], dt.datetime] = system_clock
"""What ``now_aware`` and ``utc_now`` read (aware UTC); a test replaces it to set the time."""


def now_aware() -> dt.datetime:
    """Now, aware UTC."""
    return source()


def utc_now() -> dt.datetime:
    """Now as every database stores it: naive UTC."""
    return source().replace(tzinfo=None)
