"""お知らせ through the intermediate server: store and forward between a tenant and the network.

* A tenant (municipality) hands in お知らせ by 統合宛名番号 (``/api/tenant/notices``); each is kept
  here until the network has accepted it.  Forwarding replaces the 統合宛名番号 with the tenant's
  符号 for the person (this server's 符号 ↔ 統合宛名番号 table) — the network never sees either the
  統合宛名番号 or any number.  A notice whose person has no 符号 here yet, or that the network could
  not take (unreachable, 5xx, 401), stays pending and is retried with backoff.  A notice the network
  refuses for good (an item it rejects, or a 4xx other than 401 for the batch) is marked failed
  (``failed_at``, the reason in ``last_error``), never tried again, and reported to the tenant with
  the read statuses (``{"ref", "failed"}``), who then sends a printed letter instead.
* Once the network has taken a notice (or refused it for good) this server keeps only its metadata:
  the title and the text are blanked.
* Read status comes back from the network's IF system (``/api/if/notices/read``) and waits here
  until the tenant collects and acknowledges it (``/api/tenant/notices/reads[/ack]``).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, Field
from sqlalchemy import DateTime, Integer, MetaData, String, Text, UniqueConstraint, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kojinbango.common.db import NAMING, Database
from kojinbango.common.errors import Unauthorised
from kojinbango.common.linkage import iso, parse_iso, writing
from kojinbango.common.transport import RemoteError, Unreachable, caller
from kojinbango.common.worker import BackgroundLoop, refused_for_good
from kojinbango.domain.clock import utc_now as now
from kojinbango.intermediate.models import FugoLink

log = logging.getLogger(__name__)

VERSION_TABLE = "alembic_version_intermediate_notices"
MIGRATIONS = "kojinbango.intermediate:notices_migrations"
REF = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
BATCH = 500

Call = Callable[[str, str, str, Any], Any]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class IntermediateNotice(Base):
    """One お知らせ of a tenant for one person, until the network took it; then its read status."""

    __tablename__ = "im_notices"
    __table_args__ = (UniqueConstraint("tenant", "ref"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(40), nullable=False)
    ref: Mapped[str] = mapped_column(String(64), nullable=False)  # the tenant's delivery reference
    integrated_number: Mapped[str] = mapped_column(String(20), nullable=False)
    title: Mapped[str] = mapped_column(String(100), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    sent_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    forwarded_at: Mapped[dt.datetime | None] = mapped_column(DateTime, index=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str] = mapped_column(String(400), nullable=False, default="")
    read_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    read_collected_at: Mapped[dt.datetime | None] = mapped_column(DateTime)  # read / failure reported
    failed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class NoticeIn(BaseModel):
    ref: str = REF
    integrated_number: str = Field(min_length=1, max_length=20, pattern=r"^[0-9A-Za-z-]+$")
    title: str = Field(min_length=1, max_length=100)
    body: str = Field(min_length=1, max_length=4000)
    sent_at: str = Field(min_length=1, max_length=40)


class NoticesIn(BaseModel):
    items: list[NoticeIn] = Field(max_length=BATCH)


class ReadItem(BaseModel):
    ref: str = REF
    read_at: str = Field(min_length=1, max_length=40)


class ReadsIn(BaseModel):
    tenant: str = Field(min_length=1, max_length=40)
    items: list[ReadItem] = Field(max_length=1000)


class Ack(BaseModel):
    refs: list[str] = Field(max_length=5000)


class IntermediateNotices:
    def __init__(
        self,
        db: Database,
        tenants: Iterable[str],
        network: str,
        call: Call,
        retry_max_seconds: float = 60.0,
    ):
        self.db = db
        self.tenants = set(tenants)
        self.network = network
        self.call = call
        self.retry_max_seconds = retry_max_seconds
        self._forwarding = threading.Lock()
        self._loop = BackgroundLoop("intermediate-notices", self.forward, 1.0)

    # --- from the tenant -------------------------------------------------------------------
    def accept(self, tenant: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Keep the tenant's お知らせ (each reference once), then try to forward them at once."""
        t = now()
        refs = [i["ref"] for i in items]
        with writing(self.db) as s:
            known = set(
                s.scalars(
                    select(IntermediateNotice.ref).where(
                        IntermediateNotice.tenant == tenant, IntermediateNotice.ref.in_(refs)
                    )
                )
            )
            for item in items:
                if item["ref"] in known:
                    continue
                known.add(item["ref"])
                s.add(
                    IntermediateNotice(
                        tenant=tenant,
                        ref=item["ref"],
                        integrated_number=item["integrated_number"],
                        title=item["title"],
                        body=item["body"],
                        sent_at=parse_iso(item["sent_at"]) or t,
                        received_at=t,
                    )
                )
        self.forward()  # best effort now; whatever fails stays pending for the worker
        return {"accepted": refs}

    def reads(self, tenant: str) -> list[dict[str, Any]]:
        """Read statuses — and refusals for good (``failed``: the reason) — the tenant has not
        acknowledged yet."""
        with self.db.transaction() as s:
            rows = s.execute(
                select(
                    IntermediateNotice.ref,
                    IntermediateNotice.read_at,
                    IntermediateNotice.failed_at,
                    IntermediateNotice.last_error,
                )
                .where(
                    IntermediateNotice.tenant == tenant,
                    IntermediateNotice.read_at.is_not(None) | IntermediateNotice.failed_at.is_not(None),
                    IntermediateNotice.read_collected_at.is_(None),
                )
                .order_by(IntermediateNotice.id)
                .limit(1000)
            ).all()
        return [
            {"ref": ref, "failed": error or "refused"} if failed else {"ref": ref, "read_at": iso(at)}
            for ref, at, failed, error in rows
        ]

    def ack(self, tenant: str, refs: list[str]) -> int:
        with writing(self.db) as s:
            rows = list(
                s.scalars(
                    select(IntermediateNotice).where(
                        IntermediateNotice.tenant == tenant,
                        IntermediateNotice.ref.in_(refs),
                        IntermediateNotice.read_at.is_not(None) | IntermediateNotice.failed_at.is_not(None),
                    )
                )
            )
            for n in rows:
                n.read_collected_at = n.read_collected_at or now()
        return len(rows)

    def status(self, tenant: str, refs: list[str]) -> dict[str, Any]:
        """Where each of these お知らせ stands here: handed to the network yet, and the last error."""
        with self.db.transaction() as s:
            rows = list(
                s.scalars(
                    select(IntermediateNotice).where(
                        IntermediateNotice.tenant == tenant, IntermediateNotice.ref.in_(refs)
                    )
                )
            )
        return {
            n.ref: {
                "forwarded": n.forwarded_at is not None,
                "failed": n.failed_at is not None,
                "attempts": n.attempts,
                "last_error": n.last_error,
            }
            for n in rows
        }

    # --- from the network ------------------------------------------------------------------
    def record_reads(self, tenant: str, items: list[dict[str, Any]]) -> dict[str, int]:
        if tenant not in self.tenants:
            raise Unauthorised("this intermediate server does not serve that organisation")
        when = {i["ref"]: parse_iso(i["read_at"]) or now() for i in items}
        with writing(self.db) as s:
            rows = list(
                s.scalars(
                    select(IntermediateNotice).where(
                        IntermediateNotice.tenant == tenant, IntermediateNotice.ref.in_(list(when))
                    )
                )
            )
            for n in rows:
                if n.read_at is None:
                    n.read_at = when[n.ref]
        return {"recorded": len(rows)}

    # --- forwarding to the network -------------------------------------------------------------
    def forward(self) -> int:
        """Hand every due pending お知らせ to the network, addressed by the tenant's 符号."""
        with self._forwarding:  # the worker and a tenant's request must not send the same batch twice
            t = now()
            with self.db.transaction() as s:
                rows = s.execute(
                    select(IntermediateNotice, FugoLink.fugo)
                    .outerjoin(
                        FugoLink,
                        (FugoLink.tenant == IntermediateNotice.tenant)
                        & (FugoLink.integrated_number == IntermediateNotice.integrated_number),
                    )
                    .where(
                        IntermediateNotice.forwarded_at.is_(None),
                        IntermediateNotice.failed_at.is_(None),
                        (IntermediateNotice.next_attempt_at.is_(None))
                        | (IntermediateNotice.next_attempt_at <= t),
                    )
                    .order_by(IntermediateNotice.id)
                    .limit(BATCH)
                ).all()
            by_tenant: dict[str, list[tuple[IntermediateNotice, str]]] = {}
            for n, fugo in rows:
                if fugo is None:
                    self._failed([n.id], "this person has no 符号 at this intermediate server yet")
                    continue
                by_tenant.setdefault(n.tenant, []).append((n, fugo))
            done = 0
            for tenant, items in by_tenant.items():
                payload = {
                    "tenant": tenant,
                    "items": [
                        {
                            "ref": n.ref,
                            "fugo": fugo,
                            "title": n.title,
                            "body": n.body,
                            "sent_at": iso(n.sent_at),
                        }
                        for n, fugo in items
                    ],
                }
                ids = {n.ref: n.id for n, _ in items}
                try:
                    answer = self.call(self.network, "POST", "/api/if/notices", payload)
                except RemoteError as exc:
                    if refused_for_good(exc):
                        self._refused(
                            list(ids.values()), f"the network refused it: {exc.status} {exc.detail}"
                        )
                    else:
                        self._failed(list(ids.values()), f"the network did not take it: {exc}")
                    continue
                except Unreachable as exc:
                    self._failed(list(ids.values()), f"the network did not take it: {exc}")
                    continue
                accepted = [ids[r] for r in answer.get("accepted", []) if r in ids]
                with writing(self.db) as s:
                    for n in s.scalars(select(IntermediateNotice).where(IntermediateNotice.id.in_(accepted))):
                        n.forwarded_at, n.last_error = now(), ""
                        n.title = n.body = ""  # the network holds it now: only the metadata stays here
                for bad in answer.get("rejected", []):
                    if bad.get("ref") in ids:
                        self._refused([ids[bad["ref"]]], f"the network refused it: {bad.get('reason', '')}")
                done += len(accepted)
            return done

    def _failed(self, ids: list[int], error: str) -> None:
        with writing(self.db) as s:
            for n in s.scalars(select(IntermediateNotice).where(IntermediateNotice.id.in_(ids))):
                n.attempts += 1
                n.last_error = error[:400]
                delay = min(self.retry_max_seconds, 0.5 * 2 ** min(n.attempts, 10))
                n.next_attempt_at = now() + dt.timedelta(seconds=delay)

    def _refused(self, ids: list[int], error: str) -> None:
        """Refused for good: no more attempts; reported to the tenant with the read statuses."""
        with writing(self.db) as s:
            for n in s.scalars(select(IntermediateNotice).where(IntermediateNotice.id.in_(ids))):
                n.attempts += 1
                n.failed_at, n.next_attempt_at = now(), None
                n.last_error = error[:400]
                n.title = n.body = ""  # it goes no further: the tenant sends a letter from its own copy
        log.warning("%d お知らせ refused for good by the network", len(ids))

    # --- worker ------------------------------------------------------------------------------
    def start(self, interval: float = 1.0) -> None:
        self._loop.interval = interval
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()


def install(app: FastAPI, notices: IntermediateNotices) -> None:
    router = APIRouter(prefix="/api")

    def tenant(request: Request) -> str:
        org = caller(request)
        if org not in notices.tenants:
            raise Unauthorised("this organisation is not a tenant of this intermediate server")
        return org

    @router.post("/tenant/notices")
    def accept(body: NoticesIn, request: Request) -> dict[str, Any]:
        return notices.accept(tenant(request), [i.model_dump() for i in body.items])

    @router.post("/tenant/notices/reads")
    def reads(request: Request) -> dict[str, Any]:
        return {"reads": notices.reads(tenant(request))}

    @router.post("/tenant/notices/reads/ack")
    def ack(body: Ack, request: Request) -> dict[str, Any]:
        return {"acknowledged": notices.ack(tenant(request), body.refs)}

    @router.post("/tenant/notices/status")
    def status(body: Ack, request: Request) -> dict[str, Any]:
        return {"items": notices.status(tenant(request), body.refs)}

    @router.post("/if/notices/read")
    def read(body: ReadsIn, request: Request) -> dict[str, Any]:
        if caller(request) != notices.network:
            raise Unauthorised("only the network's IF system may call this")
        return notices.record_reads(body.tenant, [i.model_dump() for i in body.items])

    app.include_router(router)
