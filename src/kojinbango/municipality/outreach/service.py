"""Push notices (seed 3-1): conditions → targets → text → confirmation → delivery → read status.

Who reads it where: residents who hold a 個人番号カード (handed over or applied for at this
municipality's counter, not abolished since) — and anyone who already reads the portal inbox — get
it as お知らせ in the portal; everyone else gets a printed letter (通知文).

Delivery goes through :class:`NoticeChannel`.  The deployment's channel, when the municipality
takes part in information linkage, is ``network_channel.NetworkNoticeChannel``: each inbox copy is
an outbox entry in this database and travels municipality → intermediate server → network → portal,
addressed by 統合宛名番号 and then by this municipality's 符号, never by 個人番号 or 住民票コード;
read status comes back the same way.  Without the network, :class:`PortalPullChannel` keeps the
copies here and the portal pulls a logged-in resident's notices by the serial of the
利用者証明用電子証明書 (J-LIS's 証明書情報連携 maps it to this municipality's resident).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kojinbango.common.db import Database
from kojinbango.common.errors import BusinessError, Conflict, NotFound
from kojinbango.documents.certificates import Letter, render_letters
from kojinbango.domain.clock import utc_now as now
from kojinbango.domain.jst import jst_text, today_jst
from kojinbango.municipality.cards.models import CounterRecord
from kojinbango.municipality.outreach.models import NoticeDelivery, PortalUser, PushNotice
from kojinbango.municipality.register.models import Resident
from kojinbango.municipality.register.service import full_address

log = logging.getLogger(__name__)
SAMPLE = 10


def age_on(birth: dt.date, day: dt.date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


@dataclass(frozen=True)
class Conditions:
    """対象条件: every given condition must hold.

    ``min_age``/``max_age`` — the person's age; ``child_under`` — the household has a member younger
    than this many years; ``min_household`` — the household has at least this many members;
    ``district`` — the address starts with this text (町名); ``benefit`` — a business system
    (e.g. ``welfare``) holds a linked record of the person; ``unit`` — ``person`` (everyone who
    matches) or ``household`` (the 世帯主 of each matching household)."""

    min_age: int | None = None
    max_age: int | None = None
    child_under: int | None = None
    min_household: int | None = None
    district: str = ""
    benefit: str = ""
    unit: str = "person"

    @classmethod
    def parse(cls, form: dict[str, Any]) -> Conditions:
        problems: list[str] = []

        def number(key: str, label: str, low: int, high: int) -> int | None:
            raw = str(form.get(key) or "").strip()
            if not raw:
                return None
            if not raw.isdigit() or not (low <= int(raw) <= high):
                problems.append(f"{label} must be a whole number from {low} to {high}")
                return None
            return int(raw)

        c = cls(
            min_age=number("min_age", "年齢（下限）", 0, 130),
            max_age=number("max_age", "年齢（上限）", 0, 130),
            child_under=number("child_under", "子の年齢（未満）", 1, 30),
            min_household=number("min_household", "世帯人数", 1, 30),
            district=str(form.get("district") or "").strip(),
            benefit=str(form.get("benefit") or "").strip(),
            unit=str(form.get("unit") or "person"),
        )
        if c.min_age is not None and c.max_age is not None and c.min_age > c.max_age:
            problems.append("年齢（下限） is above 年齢（上限）")
        if c.unit not in ("person", "household"):
            problems.append("send to each matching person or to each matching household's 世帯主")
        given = (c.min_age, c.max_age, c.child_under, c.min_household, c.district, c.benefit)
        if all(v in (None, "") for v in given):
            problems.append("give at least one target condition (a notice to everyone is not a push notice)")
        if problems:
            raise BusinessError("; ".join(problems))
        return c

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, "")}

    def describe(self) -> str:
        parts = []
        if self.min_age is not None or self.max_age is not None:
            parts.append(
                f"年齢 {self.min_age if self.min_age is not None else ''}〜{self.max_age if self.max_age is not None else ''}歳"
            )
        if self.child_under is not None:
            parts.append(f"{self.child_under}歳未満の子のいる世帯")
        if self.min_household is not None:
            parts.append(f"{self.min_household}人以上の世帯")
        if self.district:
            parts.append(f"住所が「{self.district}」で始まる")
        if self.benefit:
            parts.append(f"{self.benefit} の受給記録あり")
        parts.append("世帯主あて" if self.unit == "household" else "該当者本人あて")
        return "、".join(parts)


class NoticeChannel(Protocol):
    """Where a sent notice goes for residents who read the portal.

    ``send`` writes every copy (``NoticeDelivery``) in its own transaction before calling
    ``deliver``, so a channel that forwards copies treats the rows as its outbox and loses none if
    ``deliver`` fails or the process stops; ``collect`` brings read status up to date."""

    name: str

    def deliver(self, notice_id: int, resident_ids: Sequence[int]) -> None: ...

    def collect(self) -> None: ...

    def waiting_onward(self, delivery_ids: Sequence[int]) -> dict[int, str]:
        """Copies that left this municipality but wait further on (id → the last error)."""
        ...


class PortalPullChannel:
    """The copies stay here; the portal pulls them (``/api/portal/inbox``).  See the module doc."""

    name = "portal_pull"

    def deliver(self, notice_id: int, resident_ids: Sequence[int]) -> None:
        return None  # the delivery rows written by ``send`` are what the portal reads

    def collect(self) -> None:
        return None  # the portal marks them read here directly

    def waiting_onward(self, delivery_ids: Sequence[int]) -> dict[int, str]:
        return {}  # nothing travels onward


CARD_ACTIONS = ("交付", "再交付", "廃止")


def portal_readers(s: Session, resident_ids: Sequence[int]) -> set[int]:
    """The residents among ``resident_ids`` who get notices in the portal inbox, not by post:
    holders of a card from this municipality's desk whose last card event is not 廃止, and
    residents who have already opened the inbox (the pull channel records them)."""
    wanted = set(resident_ids)
    last: dict[int, str] = {}
    for rid, action in s.execute(
        select(CounterRecord.resident_id, CounterRecord.action).order_by(CounterRecord.at, CounterRecord.id)
    ):
        if rid in wanted and action.startswith(CARD_ACTIONS):
            last[rid] = action
    readers = {rid for rid, action in last.items() if not action.startswith("廃止")}
    readers |= set(s.scalars(select(PortalUser.resident_id))) & wanted
    return readers


@dataclass(frozen=True)
class Preview:
    count: int
    sample: list[dict[str, Any]]
    conditions: Conditions


class OutreachService:
    def __init__(
        self,
        db: Database,
        municipality: str,
        sender: str,
        benefit_holders: Callable[[str], set[int]],
        channel: NoticeChannel | None = None,
    ):
        self.db = db
        self.municipality = municipality
        self.sender = sender
        self.benefit_holders = benefit_holders
        self.channel: NoticeChannel = channel or PortalPullChannel()

    # --- targets ---------------------------------------------------------------------------
    def targets(self, c: Conditions, today: dt.date | None = None) -> list[int]:
        """The residents (internal ids) the conditions select, in id order."""
        day = today or today_jst()
        with self.db.transaction() as s:
            rows = s.execute(
                select(
                    Resident.id,
                    Resident.household_id,
                    Resident.birth_date,
                    Resident.address,
                    Resident.relationship,
                )
                .where(Resident.status == "active")
                .order_by(Resident.id)
            ).all()
        households: dict[int, list[Any]] = {}
        for row in rows:
            households.setdefault(row.household_id, []).append(row)
        holders = self.benefit_holders(c.benefit) if c.benefit else set()
        chosen: list[int] = []
        for row in rows:
            members = households[row.household_id]
            age = age_on(row.birth_date, day)
            if c.min_age is not None and age < c.min_age:
                continue
            if c.max_age is not None and age > c.max_age:
                continue
            if c.child_under is not None and not any(
                age_on(m.birth_date, day) < c.child_under for m in members
            ):
                continue
            if c.min_household is not None and len(members) < c.min_household:
                continue
            if c.district and not row.address.startswith(c.district):
                continue
            if c.benefit and row.id not in holders:
                continue
            chosen.append(row.id)
        if c.unit == "household":
            heads = []
            for hid in dict.fromkeys(next(r.household_id for r in rows if r.id == rid) for rid in chosen):
                members = households[hid]
                head = next((m for m in members if m.relationship == "世帯主"), members[0])
                heads.append(head.id)
            return sorted(heads)
        return chosen

    def preview(self, c: Conditions) -> Preview:
        ids = self.targets(c)
        sample_ids = ids[:SAMPLE]
        with self.db.transaction() as s:
            readers = portal_readers(s, sample_ids)
            people = {r.id: r for r in s.scalars(select(Resident).where(Resident.id.in_(sample_ids)))}
        sample = [
            {
                "id": rid,
                "name": f"{people[rid].family_name}　{people[rid].given_name}",
                "birth_date": people[rid].birth_date,
                "address": people[rid].address,
                "channel": "inbox" if rid in readers else "letter",
            }
            for rid in sample_ids
        ]
        return Preview(len(ids), sample, c)

    # --- notices ---------------------------------------------------------------------------
    def draft(self, c: Conditions, title: str, body: str, staff: str) -> int:
        problems = []
        if not title.strip() or len(title.strip()) > 100:
            problems.append("the title must have 1–100 characters")
        if not body.strip() or len(body) > 4000:
            problems.append("the text must have 1–4000 characters")
        if problems:
            raise BusinessError("; ".join(problems))
        with self.db.transaction() as s:
            notice = PushNotice(
                title=title.strip(),
                body=body.strip(),
                conditions=c.as_dict(),
                status="draft",
                created_by=staff,
                created_at=now(),
            )
            s.add(notice)
            s.flush()
            return int(notice.id)

    def get(self, notice_id: int) -> PushNotice:
        with self.db.transaction() as s:
            notice = s.get(PushNotice, notice_id)
            if notice is None:
                raise NotFound("no notice with this id")
            return notice

    def conditions_of(self, notice: PushNotice) -> Conditions:
        return Conditions(**notice.conditions)  # type: ignore[arg-type]

    def send(self, notice_id: int, confirmed_count: int, staff: str) -> dict[str, int]:
        """Deliver to the targets as they are now — only if they are the count the staff confirmed."""
        notice = self.get(notice_id)
        if notice.status != "draft":
            raise Conflict("this notice was already sent")
        ids = self.targets(self.conditions_of(notice))
        if len(ids) != confirmed_count:
            raise Conflict(
                f"the targets changed since they were confirmed ({confirmed_count} then, {len(ids)} now); "
                "check the list again"
            )
        at = now()
        with self.db.transaction() as s:
            fresh = s.get(PushNotice, notice_id, with_for_update=True)
            if fresh is None or fresh.status != "draft":
                raise Conflict("this notice was already sent")
            readers = portal_readers(s, ids)
            inbox = [rid for rid in ids if rid in readers]
            for rid in ids:
                s.add(
                    NoticeDelivery(
                        notice_id=notice_id,
                        resident_id=rid,
                        channel="inbox" if rid in readers else "letter",
                        delivered_at=at,
                    )
                )
            fresh.status, fresh.sent_by, fresh.sent_at = "sent", staff, at
        try:
            self.channel.deliver(notice_id, inbox)
        except Exception:  # the copies are saved: the channel's worker retries them
            log.exception("delivering notice %s now failed; it stays pending", notice_id)
        return {"targets": len(ids), "inbox": len(inbox), "letters": len(ids) - len(inbox)}

    def _collect(self) -> None:
        """Bring read status up to date before showing it (best effort: the worker does it too)."""
        try:
            self.channel.collect()
        except Exception:
            log.warning("read status could not be collected now", exc_info=True)

    def notices(self) -> list[dict[str, Any]]:
        self._collect()
        with self.db.transaction() as s:
            rows = list(s.scalars(select(PushNotice).order_by(PushNotice.id.desc())))
            stats = {
                (nid, ch): (n, r)
                for nid, ch, n, r in s.execute(
                    select(
                        NoticeDelivery.notice_id,
                        NoticeDelivery.channel,
                        func.count(),
                        func.count(NoticeDelivery.read_at),
                    ).group_by(NoticeDelivery.notice_id, NoticeDelivery.channel)
                ).all()
            }
        out = []
        for n in rows:
            inbox, read = stats.get((n.id, "inbox"), (0, 0))
            letters, _ = stats.get((n.id, "letter"), (0, 0))
            out.append({"notice": n, "inbox": inbox, "read": read, "letters": letters})
        return out

    def deliveries(self, notice_id: int) -> list[dict[str, Any]]:
        self._collect()
        with self.db.transaction() as s:
            rows = s.execute(
                select(NoticeDelivery, Resident)
                .join(Resident, Resident.id == NoticeDelivery.resident_id)
                .where(NoticeDelivery.notice_id == notice_id)
                .order_by(NoticeDelivery.id)
            ).all()
        onward: dict[int, str] = {}
        try:  # copies that left here but have not reached the network yet
            onward = self.channel.waiting_onward(
                [d.id for d, _ in rows if d.channel == "inbox" and d.forwarded_at and not d.read_at]
            )
        except Exception:
            log.warning("where the sent copies stand could not be asked now", exc_info=True)
        out = []
        for d, r in rows:
            # 送達待ち: an inbox copy not yet at the network (kept and retried by this municipality
            # or by the intermediate server)
            here = d.channel == "inbox" and d.forwarded_at is None and self.channel.name != "portal_pull"
            out.append(
                {
                    "resident_id": r.id,
                    "name": f"{r.family_name}　{r.given_name}",
                    "channel": d.channel,
                    "read_at": d.read_at,
                    "pending": "municipality" if here else ("intermediate" if d.id in onward else ""),
                    # 送達不能: refused for good on the way; the copy went over to the printed letters
                    "failed": d.failed_at is not None,
                    "last_error": d.last_error if here or d.failed_at else onward.get(d.id, ""),
                }
            )
        return out

    def letters_pdf(self, notice_id: int) -> bytes:
        """The printed letters for the residents this notice reaches by post (one PDF)."""
        notice = self.get(notice_id)
        with self.db.transaction() as s:
            people = list(
                s.scalars(
                    select(Resident)
                    .join(NoticeDelivery, NoticeDelivery.resident_id == Resident.id)
                    .where(NoticeDelivery.notice_id == notice_id, NoticeDelivery.channel == "letter")
                    .order_by(Resident.id)
                )
            )
        if not people:
            raise BusinessError("no one receives this notice by post")
        day = today_jst(notice.sent_at or now())
        letters = [
            Letter(
                municipality=self.municipality,
                sender=self.sender,
                postal_code=p.postal_code,
                address=full_address(p.address, p.address_extra),
                addressee=f"{p.family_name}　{p.given_name}",
                title=notice.title,
                paragraphs=[para for para in notice.body.splitlines() if para.strip()],
                issued_on=day,
                document_number=f"N{notice.id}-{p.id}",
            )
            for p in people
        ]
        return render_letters(letters)

    # --- the resident's side (through the portal) -----------------------------------------
    def inbox(self, resident_id: int) -> list[dict[str, Any]]:
        """The resident's notices, newest first; records that the resident reads the portal."""
        at = now()
        with self.db.transaction() as s:
            reader = s.get(PortalUser, resident_id)
            if reader is None:
                s.add(PortalUser(resident_id=resident_id, first_seen=at, last_seen=at))
            else:
                reader.last_seen = at
            rows = s.execute(
                select(NoticeDelivery, PushNotice)
                .join(PushNotice, PushNotice.id == NoticeDelivery.notice_id)
                .where(NoticeDelivery.resident_id == resident_id)
                .order_by(NoticeDelivery.id.desc())
            ).all()
        return [
            {
                "id": n.id,
                "title": n.title,
                "body": n.body,
                "sender": self.municipality,
                "sent_at": jst_text(n.sent_at or at),
                "read": d.read_at is not None,
            }
            for d, n in rows
        ]

    def mark_read(self, resident_id: int, notice_id: int) -> None:
        with self.db.transaction() as s:
            d = s.scalar(
                select(NoticeDelivery).where(
                    NoticeDelivery.resident_id == resident_id, NoticeDelivery.notice_id == notice_id
                )
            )
            if d is None:
                raise NotFound("no such notice for this resident")
            if d.read_at is None:
                d.read_at = now()
