"""A querier's request ids: unique, unguessable in part, and in the order they were made."""

from __future__ import annotations

import re
import time

from kojinbango.common.linkage import new_request_id


def test_request_ids_are_time_ordered_and_unique() -> None:
    ids = []
    for _ in range(2000):
        ids.append(new_request_id())
        if len(ids) % 500 == 0:
            time.sleep(0.002)  # across milliseconds too
    assert all(re.fullmatch(r"RQ[0-9a-f]{24}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    # ordered by the millisecond they were made in (within one, by chance): the indexes take them at their end
    stamps = [int(i[2:14], 16) for i in ids]
    assert stamps == sorted(stamps)
    assert abs(stamps[-1] - time.time_ns() // 1_000_000) < 5_000
    assert len({i[14:] for i in ids}) == len(ids)  # the random half differs even within a millisecond
