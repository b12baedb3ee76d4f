"""The prefecture's relay: accept a municipality's changes, keep a replica, forward to J-LIS in order."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update

from kojinbango.common.db import Database
from kojinbango.common.errors import BusinessError
from kojinbango.common.transport import RemoteError, SignedClient, Unreachable
from kojinbango.prefecture.models import RelayEntry, ReplicaRecord

log = logging.getLogger(__name__)
FORWARD_BATCH = 5_000


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class PrefectureService:
    def __init__(self, db: Database, client: SignedClient, jlis_id: str, municipalities: dict[str, str]):
        self.db = db
        self.client = client
        self.jlis_id = jlis_id
        self.municipalities = municipalities  # org id -> lg code of the municipalities it serves
        self._forward_lock = threading.Lock()

    def receive(self, sender_org: str, changes: Sequence[dict[str, Any]]) -> int:
        """Store a CS push from one of our municipalities (idempotent per seq), update the replica."""
        lg_code = self.municipalities.get(sender_org)
        if lg_code is None:
            raise BusinessError("this municipality does not belong to this prefecture")
        accepted = 0
        with self.db.transaction() as s:
            for ch in changes:
                if str(ch.get("source")) != lg_code:
                    raise BusinessError("a municipality may only push its own changes")
                seq = int(ch["seq"])
                if s.scalar(select(RelayEntry.id).where(RelayEntry.source == lg_code, RelayEntry.seq == seq)):
                    continue
                rec = ch["record"]
                s.add(
                    RelayEntry(
                        source=lg_code,
                        seq=seq,
                        event_type=str(ch["event_type"]),
                        event_date=dt.date.fromisoformat(str(ch["event_date"])),
                        payload=ch,
                        received_at=_now(),
                    )
                )
                self._replicate(s, lg_code, str(ch["event_type"]), rec)
                accepted += 1
        return accepted

    def _replicate(self, s: Any, lg_code: str, event_type: str, rec: dict[str, Any]) -> None:
        current = s.get(ReplicaRecord, rec["resident_code"])
        if current is not None and current.municipality != lg_code and event_type != "転入":
            return
        values = dict(
            my_number=rec.get("my_number"),
            family_name=rec["family_name"],
            given_name=rec["given_name"],
            family_kana=rec.get("family_kana") or "",
            given_kana=rec.get("given_kana") or "",
            birth_date=dt.date.fromisoformat(str(rec["birth_date"])),
            sex=int(rec["sex"]),
            address=rec["address"],
            municipality=lg_code,
            status=rec.get("status", "current"),
            updated_at=_now(),
        )
        if current is None:
            s.add(ReplicaRecord(resident_code=rec["resident_code"], **values))
        else:
            for k, v in values.items():
                setattr(current, k, v)

    def forward(self) -> int:
        """Send pending changes to J-LIS in the order received; what fails stays pending."""
        sent = 0
        with self._forward_lock:
            while True:
                with self.db.transaction() as s:
                    batch = list(
                        s.scalars(
                            select(RelayEntry).where(RelayEntry.forwarded_at.is_(None)).order_by(RelayEntry.id).limit(FORWARD_BATCH)
                        )
                    )
                    ids = [e.id for e in batch]
                    payload = [e.payload for e in batch]
                if not batch:
                    return sent
                try:
                    self.client.call(self.jlis_id, "POST", "/api/identity/changes", {"changes": payload})
                except (RemoteError, Unreachable) as exc:
                    log.warning("forwarding to J-LIS failed, %d changes stay pending: %s", len(ids), exc)
                    return sent
                with self.db.transaction() as s:
                    s.execute(update(RelayEntry).where(RelayEntry.id.in_(ids)).values(forwarded_at=_now()))
                sent += len(ids)

    def pending(self) -> int:
        with self.db.transaction() as s:
            return s.scalar(select(func.count()).select_from(RelayEntry).where(RelayEntry.forwarded_at.is_(None))) or 0
