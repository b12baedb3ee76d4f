"""お知らせ through the intermediate server and the network (the deployment's NoticeChannel).

municipality ──(統合宛名番号)──▶ intermediate server ──(this municipality's 符号)──▶ network
   (network keeps it under its person id) ──▶ portal, for the resident who logged in with the card
read status: portal ──▶ network ──▶ intermediate server ◀── collected here (and acknowledged)

Every hop is signed HTTP and keeps what it has not handed on yet: here, the inbox copies
(``NoticeDelivery`` rows with no ``forwarded_at``) are the outbox, sent by the worker — woken by
``deliver``, so the staff's send returns as soon as the copies are saved, whatever state the
intermediate server is in — and retried with backoff until the intermediate server has taken them.
The staff page asks the intermediate server for read status and for where the copies stand, but
waits at most ``page_wait_seconds`` for it: a server that hangs does not hold the page.

A resident without a 符号 yet gets one first (``LinkageService.ensure_fugo``: 取得番号 to the
intermediate server, 個人番号 to J-LIS — the number never travels with the notice).  A resident the
register holds no 個人番号 for cannot have a 符号: the copy turns into a printed letter
(``channel = letter``, listed in the letters PDF).  If J-LIS or the network cannot give the 符号 now,
the copy stays pending and is retried.

A copy a hop refuses for good (a 4xx that is not 401: ``worker.refused_for_good``) — the
intermediate server at once, or the network, reported back with the read statuses — is marked
failed (送達不能, ``failed_at`` and the reason), never tried again, and goes by printed letter.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kojinbango.common.db import Database
from kojinbango.common.linkage import iso, parse_iso, writing
from kojinbango.common.transport import RemoteError, SignedClient, Unreachable
from kojinbango.common.worker import BackgroundLoop, refused_for_good
from kojinbango.domain.clock import utc_now as now
from kojinbango.municipality.addressee.models import Addressee
from kojinbango.municipality.addressee.service import AddresseeService
from kojinbango.municipality.linkage.models import FugoRequest
from kojinbango.municipality.outreach.models import NoticeDelivery, PushNotice

log = logging.getLogger(__name__)
BATCH = 500
REF_PREFIX = "D"  # the reference of a copy outside: its delivery row's id, nothing about the person


class NetworkNoticeChannel:
    name = "network"

    def __init__(
        self,
        db: Database,
        client: SignedClient,
        intermediate: str,
        linkage: Callable[[], Any],
        addressee: AddresseeService,
        retry_max_seconds: float = 60.0,
        page_wait_seconds: float = 2.0,
    ):
        self.db = db
        self.client = client
        self.intermediate = intermediate
        self.linkage = linkage  # the municipality's LinkageService (for 符号 acquisition)
        self.addressee = addressee
        self.retry_max_seconds = retry_max_seconds
        self._lock = threading.Lock()
        self._lock_page = threading.Lock()
        self._reads_every = 10.0
        self._last_reads = 0.0
        self.page_wait_seconds = page_wait_seconds
        self._loop = BackgroundLoop("outreach-notices", self._step, 1.0, deferred=(Unreachable, RemoteError))
        self._page_calls = ThreadPoolExecutor(1, thread_name_prefix="outreach-page")
        self._page_call: Future[Any] | None = None

    # --- NoticeChannel ------------------------------------------------------------------------
    def deliver(self, notice_id: int, resident_ids: Sequence[int]) -> None:
        """The copies are saved (``send``'s transaction): the worker forwards them, starting now."""
        self._loop.wake()

    def collect(self) -> None:
        self._bounded(self.collect_reads)

    def waiting_onward(self, delivery_ids: Sequence[int]) -> dict[int, str]:
        """Copies the intermediate server still holds (the network has not taken them): id → why."""
        if not delivery_ids:
            return {}
        found: dict[int, str] | None = self._bounded(self._waiting_onward, list(delivery_ids))
        return found or {}

    def _bounded(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call the intermediate server for a staff page, waiting at most ``page_wait_seconds``; a
        call still hanging from before means the server does not answer now (nothing is asked)."""
        with self._lock_page:
            if self._page_call is not None and not self._page_call.done():
                raise Unreachable("the intermediate server has not answered an earlier request yet")
            self._page_call = call = self._page_calls.submit(fn, *args)
        try:
            return call.result(timeout=self.page_wait_seconds)
        except FutureTimeout:
            raise Unreachable(
                f"the intermediate server did not answer within {self.page_wait_seconds:g} s"
            ) from None

    def _waiting_onward(self, delivery_ids: list[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        ids = list(delivery_ids)
        for i in range(0, len(ids), 1000):
            refs = [f"{REF_PREFIX}{d}" for d in ids[i : i + 1000]]
            items = self._call("/api/tenant/notices/status", {"refs": refs}).get("items", {})
            for ref, v in items.items():
                if ref[1:].isdigit() and not v.get("forwarded") and not v.get("failed"):
                    out[int(ref[1:])] = str(v.get("last_error") or "")
        return out

    # --- forwarding ---------------------------------------------------------------------------
    def _call(self, path: str, payload: Any = None) -> Any:
        return self.client.call(self.intermediate, "POST", path, payload)

    def forward(self) -> dict[str, int]:
        """Hand every due inbox copy to the intermediate server; returns what happened to them."""
        counts = {"forwarded": 0, "pending": 0, "letter": 0, "refused": 0}
        with self._lock:
            t = now()
            with self.db.transaction() as s:
                rows = s.execute(
                    select(
                        NoticeDelivery.id,
                        NoticeDelivery.resident_id,
                        PushNotice.title,
                        PushNotice.body,
                        PushNotice.sent_at,
                    )  # fmt: skip
                    .join(PushNotice, PushNotice.id == NoticeDelivery.notice_id)
                    .where(
                        NoticeDelivery.channel == "inbox",
                        NoticeDelivery.forwarded_at.is_(None),
                        NoticeDelivery.failed_at.is_(None),
                        PushNotice.status == "sent",
                        (NoticeDelivery.next_attempt_at.is_(None)) | (NoticeDelivery.next_attempt_at <= t),
                    )
                    .order_by(NoticeDelivery.id)
                    .limit(BATCH)
                ).all()
            if not rows:
                return counts
            people = self._people([r.resident_id for r in rows])
            missing = [p["aid"] for p in people.values() if p["number"] and not p["fugo"]]
            if missing:
                self._acquire(missing)
                people = self._people([r.resident_id for r in rows])
            ready, letters, waiting = [], [], []
            for r in rows:
                p = people.get(r.resident_id)
                if p is None or not p["number"]:
                    letters.append(r.id)
                elif not p["fugo"]:
                    waiting.append(r.id)
                else:
                    ready.append((r, p["integrated"]))
            if letters:
                with writing(self.db) as s:
                    for d in s.scalars(select(NoticeDelivery).where(NoticeDelivery.id.in_(letters))):
                        d.channel = "letter"
                        d.last_error = "no 個人番号 and so no 符号: sent by letter instead"
                counts["letter"] = len(letters)
            if waiting:
                self._failed(waiting, "no 符号 for this person yet (J-LIS or the network did not answer)")
            if ready:
                items = [
                    {"ref": f"{REF_PREFIX}{r.id}", "integrated_number": number, "title": r.title,
                     "body": r.body, "sent_at": iso(r.sent_at or t)}
                    for r, number in ready
                ]  # fmt: skip
                ids = [r.id for r, _ in ready]
                refused = self._hand_on(items, ids)
                counts["forwarded"] = len(ids) - len(refused) - self._still_pending(ids)
                counts["refused"] = len(refused)
            counts["pending"] = len(waiting) + (len(ready) - counts["forwarded"] - counts["refused"])
            return counts

    def _hand_on(self, items: list[dict[str, Any]], ids: list[int]) -> list[int]:
        """Give ``items`` to the intermediate server; returns the ids it refused for good.  A batch
        refused for good is tried item by item, so one bad copy does not sink the others."""
        try:
            self._call("/api/tenant/notices", {"items": items})
        except RemoteError as exc:
            if not refused_for_good(exc):
                self._failed(ids, f"the intermediate server did not take it: {exc}")
                return []
            if len(items) == 1:
                self._refused(
                    ids, f"the intermediate server refused it: {exc.status} {exc.detail}", attempt=True
                )
                return ids
            refused: list[int] = []
            for item, one in zip(items, ids, strict=True):
                refused += self._hand_on([item], [one])
            return refused
        except Unreachable as exc:
            self._failed(ids, f"the intermediate server did not take it: {exc}")
            return []
        with writing(self.db) as s:
            for d in s.scalars(select(NoticeDelivery).where(NoticeDelivery.id.in_(ids))):
                d.forwarded_at, d.last_error = now(), ""
        return []

    def _still_pending(self, ids: list[int]) -> int:
        with self.db.transaction() as s:
            return len(
                list(
                    s.scalars(
                        select(NoticeDelivery.id).where(
                            NoticeDelivery.id.in_(ids),
                            NoticeDelivery.forwarded_at.is_(None),
                            NoticeDelivery.failed_at.is_(None),
                        )
                    )
                )
            )

    def _people(self, resident_ids: list[int]) -> dict[int, dict[str, Any]]:
        """resident id → its 統合宛名 (id, 統合宛名番号), whether it has a number and a 符号."""
        q = (
            select(
                Addressee.resident_id,
                Addressee.id,
                Addressee.integrated_number,
                Addressee.my_number,
                FugoRequest.delivered_at,
            )  # fmt: skip
            .outerjoin(FugoRequest, FugoRequest.addressee_id == Addressee.id)
            .where(Addressee.resident_id.in_(resident_ids))
        )
        with self.db.transaction() as s:
            found = s.execute(q).all()
        if len({r[0] for r in found}) < len(set(resident_ids)):
            with writing(self.db) as s:  # residents registered since the last 統合宛名 sync
                self.addressee.sync_residents(s)
            with self.db.transaction() as s:
                found = s.execute(q).all()
        return {
            int(rid): {"aid": int(aid), "integrated": str(num), "number": bool(mn), "fugo": at is not None}
            for rid, aid, num, mn, at in found
            if rid is not None
        }

    def _acquire(self, addressee_ids: list[int]) -> None:
        service = self.linkage()
        if service is None:
            return
        try:
            service.ensure_fugo(addressee_ids)
        except (Unreachable, RemoteError) as exc:
            log.warning("符号 for お知らせ not obtained now: %s", type(exc).__name__)

    def _failed(self, ids: list[int], error: str) -> None:
        with writing(self.db) as s:
            for d in s.scalars(select(NoticeDelivery).where(NoticeDelivery.id.in_(ids))):
                d.attempts += 1
                d.last_error = error[:400]
                delay = min(self.retry_max_seconds, 0.5 * 2 ** min(d.attempts, 10))
                d.next_attempt_at = now() + dt.timedelta(seconds=delay)

    def _refused(self, ids: list[int], error: str, s: Session | None = None, attempt: bool = False) -> None:
        """Refused for good on the way (送達不能): not tried again; the resident gets the printed
        letter instead (``channel = letter``: listed in the notice's letters PDF)."""
        if s is None:
            with writing(self.db) as s:
                self._refused(ids, error, s, attempt)
            return
        for d in s.scalars(select(NoticeDelivery).where(NoticeDelivery.id.in_(ids))):
            if d.failed_at is None and d.read_at is None:
                d.attempts += int(attempt)
                d.failed_at, d.next_attempt_at = now(), None
                d.channel = "letter"
                d.last_error = error[:400]
        log.warning("%d お知らせ copies refused for good: they go by letter", len(ids))

    # --- read status ----------------------------------------------------------------------------
    def collect_reads(self) -> int:
        """Read statuses (and copies refused for good further on) from the intermediate server,
        written here, then acknowledged there."""
        reads = self._call("/api/tenant/notices/reads").get("reads", [])
        if not reads:
            return 0
        when: dict[int, dt.datetime] = {}
        failed: dict[int, str] = {}
        for item in reads:
            ref = str(item.get("ref", ""))
            if ref.startswith(REF_PREFIX) and ref[1:].isdigit():
                if item.get("failed"):
                    failed[int(ref[1:])] = str(item["failed"])
                else:
                    when[int(ref[1:])] = parse_iso(item.get("read_at")) or now()
        with writing(self.db) as s:
            for d in s.scalars(select(NoticeDelivery).where(NoticeDelivery.id.in_(list(when)))):
                if d.read_at is None:
                    d.read_at = when[d.id]
            for reason, group in _grouped(failed).items():
                self._refused(group, reason, s)
        self._call("/api/tenant/notices/reads/ack", {"refs": [str(i["ref"]) for i in reads]})
        return len(when) + len(failed)

    # --- worker -------------------------------------------------------------------------------
    def start(self, interval: float = 1.0, reads_every: float = 10.0) -> None:
        """Due copies are looked for every ``interval`` (a local query); read status is asked of the
        intermediate server every ``reads_every`` seconds (and whenever staff open the page)."""
        self._reads_every = reads_every
        self._loop.interval = interval
        self._loop.start()

    def _step(self) -> None:
        self.forward()
        if time.monotonic() - self._last_reads >= self._reads_every:
            self._last_reads = time.monotonic()
            self.collect_reads()

    def stop(self) -> None:
        self._loop.stop()
        self._page_calls.shutdown(wait=False, cancel_futures=True)


def _grouped(reasons: dict[int, str]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i, reason in reasons.items():
        out.setdefault(reason, []).append(i)
    return out
