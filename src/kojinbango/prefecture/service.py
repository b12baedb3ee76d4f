"""The prefecture's relay: accept a municipality's changes, keep a replica, forward to J-LIS in order."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, select, update

from kojinbango.common.db import Database
from kojinbango.common.errors import BusinessError, Unauthorised
from kojinbango.common.transport import RemoteError, SignedClient, Unreachable
from kojinbango.domain.clock import utc_now as _now
from kojinbango.prefecture.models import RelayEntry, ReplicaRecord

log = logging.getLogger(__name__)
FORWARD_BATCH = 5_000


_REPLICA_COLUMNS = [c.name for c in ReplicaRecord.__table__.columns]


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
            raise Unauthorised("this municipality does not belong to this prefecture")
        if any(str(ch.get("source")) != lg_code for ch in changes):
            raise BusinessError("a municipality may only push its own changes")
        with self.db.transaction() as s:
            seqs = [int(ch["seq"]) for ch in changes]
            seen: set[int] = set()
            for i in range(0, len(seqs), 900):
                seen.update(
                    s.scalars(
                        select(RelayEntry.seq).where(
                            RelayEntry.source == lg_code, RelayEntry.seq.in_(seqs[i : i + 900])
                        )
                    )
                )
            fresh = []
            for ch in changes:
                if int(ch["seq"]) not in seen:
                    seen.add(int(ch["seq"]))
                    fresh.append(ch)
            codes = sorted({ch["record"]["resident_code"] for ch in fresh})
            current: dict[str, dict[str, Any]] = {}
            for i in range(0, len(codes), 900):
                for r in s.scalars(
                    select(ReplicaRecord).where(ReplicaRecord.resident_code.in_(codes[i : i + 900]))
                ):
                    current[r.resident_code] = {c: getattr(r, c) for c in _REPLICA_COLUMNS}
            existing = set(current)
            ts = _now()
            entries = []
            for ch in fresh:
                entries.append(
                    {
                        "source": lg_code,
                        "seq": int(ch["seq"]),
                        "event_type": str(ch["event_type"]),
                        "event_date": dt.date.fromisoformat(str(ch["event_date"])),
                        "payload": ch,
                        "received_at": ts,
                        "forwarded_at": None,
                    }
                )
                rec = ch["record"]
                cur = current.get(rec["resident_code"])
                # A late change from a municipality that no longer holds the person is relayed, not replicated.
                if cur is not None and cur["municipality"] != lg_code and ch["event_type"] != "転入":
                    continue
                current[rec["resident_code"]] = {
                    "resident_code": rec["resident_code"],
                    "my_number": rec.get("my_number"),
                    "family_name": rec["family_name"],
                    "given_name": rec["given_name"],
                    "family_kana": rec.get("family_kana") or "",
                    "given_kana": rec.get("given_kana") or "",
                    "birth_date": dt.date.fromisoformat(str(rec["birth_date"])),
                    "sex": int(rec["sex"]),
                    "address": rec["address"],
                    "municipality": lg_code,
                    "status": rec.get("status", "current"),
                    "updated_at": ts,
                }
            if entries:
                s.execute(insert(RelayEntry), entries)
            touched = {ch["record"]["resident_code"] for ch in fresh}
            new_rows = [current[c] for c in touched if c not in existing and c in current]
            upd_rows = [current[c] for c in touched if c in existing]
            if new_rows:
                s.execute(insert(ReplicaRecord), new_rows)
            if upd_rows:
                s.execute(update(ReplicaRecord), upd_rows)
        return len(fresh)

    def forward(self) -> int:
        """Send pending changes to J-LIS in the order received; what fails stays pending."""
        sent = 0
        with self._forward_lock:
            while True:
                with self.db.transaction() as s:
                    batch = list(
                        s.scalars(
                            select(RelayEntry)
                            .where(RelayEntry.forwarded_at.is_(None))
                            .order_by(RelayEntry.id)
                            .limit(FORWARD_BATCH)
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
            return (
                s.scalar(
                    select(func.count()).select_from(RelayEntry).where(RelayEntry.forwarded_at.is_(None))
                )
                or 0
            )
