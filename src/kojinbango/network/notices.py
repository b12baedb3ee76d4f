"""お知らせ through the network: kept per person (IDコード) and released to the portal for that person.

A municipality's intermediate server hands in each お知らせ addressed by the municipality's 符号 for
the person (``/api/if/notices``); the network opens the 符号 (it must have been made for that
municipality), keeps the notice under its internal person id — never a 個人番号 or 住民票コード —
and releases it to the portal when the portal presents *its own* 符号 for the logged-in resident
(``/api/portal/notices``), the same way やりとり履歴 works.  When the resident reads it, the read
status goes back to the sender's intermediate server (store and forward: kept until delivered,
retried with backoff), where the municipality collects it.

The texts are kept ``settings.notice_retention_days`` (``settings.linkage.notice_retention_days``
in the topology, 365 by default) from their arrival: the worker erases the title and text of older
ones every hour (``purge``); the row stays — sender, reference, person, dates, read status — so a
notice handed in again is still recognised, and the portal no longer lists it.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, Field
from sqlalchemy import DateTime, Integer, MetaData, String, Text, UniqueConstraint, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kojinbango.common.db import NAMING, Database
from kojinbango.common.errors import BusinessError, NotFound, Unauthorised
from kojinbango.common.linkage import LinkageSettings, iso, parse_iso, writing
from kojinbango.common.topology import Topology, TopologyError
from kojinbango.common.transport import RemoteError, SignedClient, Unreachable, caller
from kojinbango.common.worker import BackgroundLoop, Every
from kojinbango.domain.clock import utc_now as now
from kojinbango.network.fugo import FugoCipher, FugoError

log = logging.getLogger(__name__)

VERSION_TABLE = "alembic_version_network_notices"
MIGRATIONS = "kojinbango.network:notices_migrations"
REF = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
FUGO = Field(min_length=1, max_length=64)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class NetworkNotice(Base):
    """お知らせ held for one person (IDコード) from one sender, and whether the resident read it.

    ``read_reported_at``: when the read status reached the sender's intermediate server."""

    __tablename__ = "nw_notices"
    __table_args__ = (UniqueConstraint("sender", "sender_ref"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sender: Mapped[str] = mapped_column(String(40), nullable=False)
    sender_ref: Mapped[str] = mapped_column(String(64), nullable=False)
    person_id: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
    title: Mapped[str] = mapped_column(String(100), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    sent_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    read_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    read_reported_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    report_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_report_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str] = mapped_column(String(400), nullable=False, default="")
    purged_at: Mapped[dt.datetime | None] = mapped_column(DateTime)  # title and text erased


class NoticeItem(BaseModel):
    ref: str = REF
    fugo: str = FUGO
    title: str = Field(min_length=1, max_length=100)
    body: str = Field(min_length=1, max_length=4000)
    sent_at: str = Field(min_length=1, max_length=40)


class NoticeBatch(BaseModel):
    tenant: str = Field(min_length=1, max_length=40)
    items: list[NoticeItem] = Field(max_length=1000)


class PortalNotices(BaseModel):
    fugo: str = FUGO


class PortalRead(PortalNotices):
    notice_id: int = Field(ge=1)


class NetworkNotices:
    def __init__(
        self,
        db: Database,
        cipher: FugoCipher,
        topology: Topology,
        settings: LinkageSettings,
        client: SignedClient,
    ):
        self.db = db
        self.cipher = cipher
        self.topology = topology
        self.settings = settings
        self.client = client
        self._loop = BackgroundLoop("nws-notices", self._step, 1.0)
        self._purge_due = Every(3600)  # hourly

    # --- from intermediate servers ----------------------------------------------------------
    def receive(self, signer: str, tenant: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Keep each お知らせ under the person its 符号 names; a notice handed in twice is kept once."""
        try:
            if self.settings.receiver(tenant) != signer:
                raise Unauthorised("this intermediate server does not serve that organisation")
        except TopologyError:
            raise Unauthorised("this organisation takes no part in information linkage") from None
        if self.topology.org(tenant).kind != "municipality":
            raise BusinessError("only municipalities send お知らせ through the network")
        t = now()
        accepted: list[str] = []
        rejected: list[dict[str, str]] = []
        with writing(self.db) as s:
            for item in items:
                try:
                    person = self.cipher.open(item["fugo"], tenant)
                except FugoError as exc:
                    rejected.append({"ref": item["ref"], "reason": str(exc)})
                    continue
                exists = s.scalar(
                    select(NetworkNotice.id).where(
                        NetworkNotice.sender == tenant, NetworkNotice.sender_ref == item["ref"]
                    )
                )
                if exists is None:
                    s.add(
                        NetworkNotice(
                            sender=tenant,
                            sender_ref=item["ref"],
                            person_id=person,
                            title=item["title"],
                            body=item["body"],
                            sent_at=parse_iso(item["sent_at"]) or t,
                            received_at=t,
                        )
                    )
                accepted.append(item["ref"])
        return {"accepted": accepted, "rejected": rejected}

    # --- to the portal ----------------------------------------------------------------------
    def _person(self, signer: str, fugo: str) -> int:
        if self.topology.org(signer).kind != "portal":
            raise Unauthorised("only the portal shows a resident their お知らせ")
        try:
            return self.cipher.open(fugo, signer)
        except FugoError as exc:
            raise BusinessError(str(exc)) from None

    def for_portal(self, signer: str, fugo: str) -> list[dict[str, Any]]:
        """The person's お知らせ, newest first."""
        person = self._person(signer, fugo)
        with self.db.transaction() as s:
            rows = list(
                s.scalars(
                    select(NetworkNotice)
                    .where(NetworkNotice.person_id == person, NetworkNotice.purged_at.is_(None))
                    .order_by(NetworkNotice.sent_at.desc(), NetworkNotice.id.desc())
                )
            )
        return [
            {
                "id": n.id,
                "org": n.sender,
                "sender": self.topology.org(n.sender).name,
                "title": n.title,
                "body": n.body,
                "sent_at": iso(n.sent_at),
                "read": n.read_at is not None,
            }
            for n in rows
        ]

    def mark_read(self, signer: str, fugo: str, notice_id: int) -> dict[str, Any]:
        person = self._person(signer, fugo)
        with writing(self.db) as s:
            n = s.get(NetworkNotice, notice_id)
            if n is None or n.person_id != person or n.purged_at is not None:
                raise NotFound("no such お知らせ for this person")
            first = n.read_at is None
            if first:
                n.read_at = now()
        if first:
            try:  # best effort now, so staff see it at once; the worker retries what fails
                self.report_reads()
            except Exception:
                log.warning("read status not reported now; the worker retries", exc_info=True)
                self._loop.wake()
        return {"read": True}

    # --- read status back to the sender ------------------------------------------------------
    def report_reads(self) -> int:
        """Send read statuses not yet delivered to each sender's intermediate server."""
        t = now()
        with self.db.transaction() as s:
            rows = list(
                s.execute(
                    select(
                        NetworkNotice.id,
                        NetworkNotice.sender,
                        NetworkNotice.sender_ref,
                        NetworkNotice.read_at,
                    )
                    .where(
                        NetworkNotice.read_at.is_not(None),
                        NetworkNotice.read_reported_at.is_(None),
                        (NetworkNotice.next_report_at.is_(None)) | (NetworkNotice.next_report_at <= t),
                    )
                    .order_by(NetworkNotice.id)
                    .limit(500)
                )
            )
        by_sender: dict[str, list[Any]] = {}
        for row in rows:
            by_sender.setdefault(row.sender, []).append(row)
        done = 0
        for sender, items in by_sender.items():
            ids = [r.id for r in items]
            try:
                self.client.call(
                    self.settings.receiver(sender),
                    "POST",
                    "/api/if/notices/read",
                    {
                        "tenant": sender,
                        "items": [{"ref": r.sender_ref, "read_at": iso(r.read_at)} for r in items],
                    },
                )
            except (Unreachable, RemoteError, TopologyError) as exc:
                self._failed(ids, str(exc))
                continue
            with writing(self.db) as s:
                for n in s.scalars(select(NetworkNotice).where(NetworkNotice.id.in_(ids))):
                    n.read_reported_at, n.last_error = now(), ""
            done += len(ids)
        return done

    def _failed(self, ids: list[int], error: str) -> None:
        with writing(self.db) as s:
            for n in s.scalars(select(NetworkNotice).where(NetworkNotice.id.in_(ids))):
                n.report_attempts += 1
                n.last_error = error[:400]
                delay = min(self.settings.retry_max_seconds, 0.5 * 2 ** min(n.report_attempts, 10))
                n.next_report_at = now() + dt.timedelta(seconds=delay)

    def counts(self) -> dict[str, int]:
        with self.db.transaction() as s:
            rows = list(s.scalars(select(NetworkNotice)))
        return {
            "held": len(rows),
            "read": sum(1 for n in rows if n.read_at is not None),
            "read_reported": sum(1 for n in rows if n.read_reported_at is not None),
        }

    # --- retention -----------------------------------------------------------------------------
    def purge(self, at: dt.datetime | None = None) -> int:
        """Erase the title and text of お知らせ received more than ``notice_retention_days`` before
        ``at`` (now by default); returns how many.  The rows stay (metadata and read status)."""
        t = at or now()
        cutoff = t - dt.timedelta(days=self.settings.notice_retention_days)
        with writing(self.db) as s:
            rows = list(
                s.scalars(
                    select(NetworkNotice).where(
                        NetworkNotice.purged_at.is_(None), NetworkNotice.received_at < cutoff
                    )
                )
            )
            for n in rows:
                n.title = n.body = ""
                n.purged_at = t
        if rows:
            log.info("%d お知らせ texts erased past their retention", len(rows))
        return len(rows)

    # --- worker ------------------------------------------------------------------------------
    def _step(self) -> None:
        self.report_reads()
        if self._purge_due.due():  # hourly: texts past their retention
            self.purge()

    def start(self, interval: float = 1.0) -> None:
        self._loop.interval = interval
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()


def install(app: FastAPI, notices: NetworkNotices) -> None:
    """``/api/if/notices`` (intermediate servers) and ``/api/portal/notices[/read]`` (the portal)."""
    router = APIRouter(prefix="/api")

    @router.post("/if/notices")
    def receive(body: NoticeBatch, request: Request) -> dict[str, Any]:
        signer = caller(request)
        if notices.topology.org(signer).kind != "intermediate" and not notices.settings.receives_itself(
            signer
        ):
            raise Unauthorised("only intermediate servers hand in お知らせ")
        return notices.receive(signer, body.tenant, [i.model_dump() for i in body.items])

    @router.post("/portal/notices")
    def portal_notices(body: PortalNotices, request: Request) -> dict[str, Any]:
        return {"notices": notices.for_portal(caller(request), body.fugo)}

    @router.post("/portal/notices/read")
    def portal_read(body: PortalRead, request: Request) -> dict[str, Any]:
        return notices.mark_read(caller(request), body.fugo, body.notice_id)

    app.include_router(router)
