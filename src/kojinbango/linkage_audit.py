"""The operator's checks of information linkage: the three provision records of each exchange side by
side (querier, provider, network — 番号法23条), a monitor's full check of the network's Merkle log, and
the network operator's view of its exchanges (how many in each state; what waits for which provider,
since when, after how many attempts and with what error).

These read the organisations' databases directly (read-only), as an auditor with access would.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select

from kojinbango.common.db import Database
from kojinbango.common.linkage import LinkageSettings, iso, public_id, receiver_database_url
from kojinbango.common.topology import Topology
from kojinbango.intermediate.models import ProvisionRecord
from kojinbango.network.core import exchange_counts
from kojinbango.network.log import MerkleLog, newest_head
from kojinbango.network.models import Exchange, LogEntry


def _records_at(topology: Topology, org_id: str) -> list[ProvisionRecord]:
    db = Database(receiver_database_url(topology, org_id))
    try:
        with db.transaction() as s:
            return list(s.scalars(select(ProvisionRecord)))
    finally:
        db.dispose()


def three_records(topology: Topology, exchange_id: str | None = None) -> dict[str, Any]:
    settings = LinkageSettings.of(topology)
    network = topology.of_kind("network")[0].id
    db = Database(topology.database_url(network))
    try:
        with db.transaction() as s:
            q = select(Exchange).order_by(Exchange.exchange_id)
            if exchange_id:
                q = q.where(Exchange.exchange_id == exchange_id)
            exchanges = list(s.scalars(q))
            leaves = {seq: leaf for seq, leaf in s.execute(select(LogEntry.seq, LogEntry.leaf))}
    finally:
        db.dispose()
    receivers = sorted(set(settings.intermediate_of.values()))
    held: dict[tuple[str, str, str], ProvisionRecord] = {}
    for r in receivers:
        for rec in _records_at(topology, r):
            held[(rec.tenant, rec.role, rec.exchange_id)] = rec
    out = []
    agree_all = True
    for ex in exchanges:
        text = leaves.get(ex.log_index) if ex.log_index is not None else None
        leaf = json.loads(text) if text else None
        qr = held.get((ex.querier, "querier", ex.exchange_id))
        pr = held.get((ex.provider, "provider", ex.exchange_id))
        views = {
            "network": None if leaf is None else {k: leaf[k] for k in ("outcome", "requested_at", "provided_at")},
            "querier": None if qr is None else {"outcome": qr.outcome, "requested_at": iso(qr.requested_at),
                                               "provided_at": iso(qr.provided_at)},
            "provider": None if pr is None else {"outcome": pr.outcome, "requested_at": iso(pr.requested_at),
                                                "provided_at": iso(pr.provided_at)},
        }  # fmt: skip
        present = [v for v in views.values() if v is not None]
        if ex.status == "pending":
            agree = True  # not concluded yet: the network writes its record when it is
        else:
            needed = ["network", "querier"] + (["provider"] if ex.status in ("answered",) else [])
            agree = all(views[k] is not None for k in needed) and all(v == present[0] for v in present)
        agree_all = agree_all and agree
        out.append(
            {
                "exchange_id": ex.exchange_id,
                "status": ex.status,
                "querier": public_id(topology, ex.querier),
                "provider": public_id(topology, ex.provider),
                "affair": ex.affair,
                "info": ex.info,
                "records": views,
                "agree": agree,
            }
        )
    return {"exchanges": out, "agree": agree_all}


def verify_network_log(topology: Topology) -> dict[str, Any]:
    network = topology.of_kind("network")[0].id
    db = Database(topology.database_url(network))
    try:
        return MerkleLog(db, topology.credentials(network)).verify()
    finally:
        db.dispose()


def network_status(topology: Topology) -> dict[str, Any]:
    """The network operator's view: exchanges by status; the pending ones by provider (how many, the
    oldest, the most delivery attempts, when the next attempt is due, the latest error); the log's
    size and its newest signed tree head.  No person appears in it."""
    network = topology.of_kind("network")[0].id
    db = Database(topology.database_url(network))
    try:
        with db.transaction() as s:
            counts = exchange_counts(s)
            waiting = list(
                s.execute(
                    select(
                        Exchange.provider,
                        func.count(),
                        func.min(Exchange.requested_at),
                        func.max(Exchange.attempts),
                        func.min(Exchange.next_attempt_at),
                    )
                    .where(Exchange.status == "pending")
                    .group_by(Exchange.provider)
                    .order_by(Exchange.provider)
                )
            )
            errors = {
                provider: error
                for provider, error in s.execute(
                    select(Exchange.provider, Exchange.last_error)
                    .where(Exchange.status == "pending", Exchange.last_error != "")
                    .order_by(Exchange.requested_at)
                )
            }  # the newest pending exchange's error, per provider
            size = s.scalar(select(func.count()).select_from(LogEntry)) or 0
            head = newest_head(s)
    finally:
        db.dispose()
    return {
        "exchanges": counts,
        "pending_by_provider": [
            {
                "provider": public_id(topology, provider),
                "pending": int(n),
                "oldest_requested_at": iso(oldest),
                "most_attempts": int(attempts or 0),
                "next_attempt_at": iso(next_at),
                "last_error": errors.get(provider, ""),
            }
            for provider, n, oldest, attempts, next_at in waiting
        ],
        "log": {
            "entries": int(size),
            "signed_tree_size": head.tree_size if head is not None else 0,
            "signed_at": iso(head.signed_at) if head is not None else None,
        },
    }
