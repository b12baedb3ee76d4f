"""The network's provision records as an append-only Merkle log (Certificate Transparency, RFC 9162).

* Appends happen inside the business transaction that decides the exchange, under one lock, so leaf
  numbers follow commit order and a rolled-back transaction leaves no trace.
* The log keeps the compact frontier of its tree in memory (rebuilt from the database on start and
  checked against the last signed tree head), so signing a new tree head does not reread entries.
  If the entries in the database no longer produce the last signed root, the log is *corrupt*: it
  says so and signs nothing more until an operator looks.
* The log also keeps every perfect subtree of its tree in memory (``Tree``, built from the entries
  as they were in the database at start, with their recomputed hashes, and grown on each commit),
  so an inclusion or consistency proof costs O(log² n) hashes instead of rereading and rehashing
  every entry.  Tampering stays visible: the portal hashes each record text it receives itself, so
  a record altered in the database no longer fits its proof; the records returned are checked
  against the kept leaf hashes (``log_problems``); a deleted or altered entry found at start marks
  the log corrupt; and ``verify`` (the monitor) still recomputes everything from the database.
* Each record commits to its person (``subject``: a salted hash of the internal id).  An entry whose
  person column was changed in the database is reported wherever it is read: in the list it was
  moved into (``check_entries``), at start and by the monitor's full check.
* Each record also names the leaf hash of the same person's previous record (``prev``; "" for their
  first), taken from the log's own memory when it is appended: a person's records form a chain.  A
  record taken out of a resident's list (deleted from the index, or moved to another person) leaves
  a gap the resident's check finds (``common.transparency``) at their next record; the end of the
  list is covered by ``chain_head`` (each person's newest record, from the log's memory, which is
  rebuilt from the database at start by whom each record commits to, not by the person column).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, insert, select, update
from sqlalchemy.orm import Session

from kojinbango.common.db import Database
from kojinbango.common.documents import canonical, sign_document
from kojinbango.common.linkage import TREE_HEAD_KIND, write_lock
from kojinbango.common.merkle import Frontier, Tree, leaf_hash
from kojinbango.common.pki import OrgCredentials
from kojinbango.common.transparency import prev_of
from kojinbango.domain.clock import utc_now as now
from kojinbango.network.models import Exchange, LogEntry, Person, TreeHead

log = logging.getLogger(__name__)
MISSING = leaf_hash(b"kojinbango: this entry is missing from the database")
_LEAVES: Table = LogEntry.__table__  # type: ignore[assignment]
_INSERT_LEAF = insert(_LEAVES)
MISFILED = "entry {seq} is filed under a person its record does not name"
UNCHAINED = (
    "entry {seq} does not follow its person's previous record (a record of theirs was removed or moved)"
)


@dataclass
class LeafState:
    hashes: list[bytes]
    problems: list[str]
    # Entries whose person column (how a resident's records are found) no longer matches the
    # person their record commits to, or whose chain to the person's previous record is broken:
    # reported, but the tree itself is intact.
    misattributed: list[str] = field(default_factory=list)
    # each person's newest entry (index, leaf hash), by the person the record commits to (its column,
    # or for a misfiled record its chain or exchange): what the next record of theirs follows
    last_of: dict[int, tuple[int, bytes]] = field(default_factory=dict)


def subject_of(salt: str, person_id: int | None) -> str:
    """The record's commitment to its person: binds it to the internal id without revealing it."""
    return leaf_hash(f"{salt}:{person_id}".encode()).hex()


def _parsed(text: str) -> dict[str, Any] | None:
    try:
        entry = json.loads(text)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


def attributed_to(text: str, person_id: int | None) -> bool:
    """Does the record ``text`` commit to ``person_id``?  (Records without a commitment: yes.)"""
    return _commits_to(_parsed(text), person_id) if text else False


def _commits_to(entry: dict[str, Any] | None, person_id: int | None) -> bool:
    if entry is None:
        return False
    if "subject" not in entry:
        return True
    return bool(entry["subject"] == subject_of(str(entry.get("salt", "")), person_id))


class Appender:
    """Adds leaves within one transaction; the log learns of them only after the commit."""

    def __init__(
        self,
        session: Session | Connection,
        first: int,
        retention: dt.timedelta,
        last_of: dict[int, tuple[int, bytes]],
    ):
        self.session = session
        self.next = first
        self.retention = retention
        self.added: list[bytes] = []
        self.last_of = last_of  # the log's memory of each person's newest entry (read only here)
        self.newest: dict[int, tuple[int, bytes]] = {}  # this transaction's appends, by person
        self.rows: list[dict[str, Any]] = []  # written together before the commit (``flush``)

    def flush(self) -> None:
        """Write the leaves appended so far (one statement for all: a batch of exchanges)."""
        if self.rows:
            self.session.execute(_INSERT_LEAF, self.rows)
            self.rows = []

    def append(self, record: dict[str, Any], person_id: int | None) -> int:
        entry = dict(record)
        # A random salt and a commitment to the internal id bind the record to its person without
        # revealing the id to anyone who reads the record.
        salt = secrets.token_hex(16)
        entry["subject"] = subject_of(salt, person_id)
        entry["salt"] = salt
        if person_id is not None:
            prev = self.newest.get(person_id) or self.last_of.get(person_id)
            entry["prev"] = prev[1].hex() if prev else ""
        text = canonical(entry).decode()
        h = leaf_hash(text.encode())
        if person_id is not None:
            self.newest[person_id] = (self.next, h)
        seq = self.next
        t = now()
        self.rows.append(
            {"seq": seq, "leaf": text, "leaf_hash": h, "person_id": person_id,
             "retain_until": t + self.retention, "created_at": t},
        )  # fmt: skip
        self.next += 1
        self.added.append(h)
        return seq


def newest_head(s: Session) -> TreeHead | None:
    """The newest signed tree head the log holds (None before the first)."""
    return s.scalar(select(TreeHead).order_by(TreeHead.tree_size.desc()).limit(1))


class MerkleLog:
    def __init__(self, db: Database, creds: OrgCredentials, retention_years: int = 7):
        self.db = db
        self.creds = creds
        self.retention = dt.timedelta(days=round(365.25 * retention_years))
        self.lock = write_lock(db) if db.is_sqlite else threading.RLock()
        self.frontier = Frontier()
        self.cached = Tree()  # every perfect subtree, for proofs without rereading the entries
        # each person's newest entry (index, leaf hash): the chain, see above
        self.last_of: dict[int, tuple[int, bytes]] = {}
        self.load_problems: list[str] = []
        self.corrupt: str | None = None
        self._load()

    # --- state ---------------------------------------------------------------------------
    def _load(self) -> None:
        state = self.leaf_state()
        head = self.latest_head()
        for i, h in enumerate(state.hashes):
            if head is not None and i == head.tree_size:
                self._check_head(head)
            self.frontier.append(h)
            self.cached.append(h)
        self.load_problems = list(state.problems) + state.misattributed
        self.last_of = state.last_of
        if state.misattributed:
            log.error(
                "provision records attributed to the wrong person: %s", "; ".join(state.misattributed[:5])
            )
        if head is not None and head.tree_size == self.frontier.size:
            self._check_head(head)
        if head is not None and head.tree_size > self.frontier.size:
            self.corrupt = f"the log holds {self.frontier.size} entries but signed a head of {head.tree_size}"
        if state.problems and self.corrupt is None:
            self.corrupt = "; ".join(state.problems[:5])
        if self.corrupt:
            log.error("the provision-record log is corrupt: %s", self.corrupt)

    def _check_head(self, head: TreeHead) -> None:
        if self.frontier.root().hex() != head.root_hash:
            self.corrupt = f"the entries no longer produce the signed root of tree size {head.tree_size}"

    def leaf_state(self, size: int | None = None) -> LeafState:
        """Leaf hashes recomputed from the stored records, and every inconsistency found."""
        hashes: list[bytes] = []
        problems: list[str] = []
        t = now()
        misattributed: list[str] = []
        last_of: dict[int, tuple[int, bytes]] = {}
        q = select(
            LogEntry.seq, LogEntry.leaf, LogEntry.leaf_hash, LogEntry.retain_until, LogEntry.person_id
        ).order_by(LogEntry.seq)
        if size is not None:
            q = q.where(LogEntry.seq < size)
        filed_last: dict[int, bytes] = {}
        owners = _ChainOwners(self.db)
        with self.db.engine.connect() as conn, owners:
            for seq, text, stored, retain_until, person_id in conn.execute(q):
                while len(hashes) < seq:
                    problems.append(f"entry {len(hashes)} is missing")
                    hashes.append(MISSING)
                owner = person_id
                if text is not None:
                    h = leaf_hash(text.encode())
                    entry = _parsed(text)  # read once for both checks (start-up reads every entry)
                    prev = prev_of(entry)
                    if h != bytes(stored):
                        problems.append(f"entry {seq} does not match its recorded hash")
                    elif not _commits_to(entry, person_id):
                        misattributed.append(MISFILED.format(seq=seq))
                        owner = owners.find(entry, prev)
                    elif (
                        prev is not None
                        and person_id is not None
                        and prev != filed_last.get(person_id, b"").hex()
                    ):
                        misattributed.append(UNCHAINED.format(seq=seq))
                elif retain_until > t:
                    problems.append(f"entry {seq} was erased before its retention period ended")
                    h = bytes(stored)
                else:
                    h = bytes(stored)
                hashes.append(h)
                if person_id is not None:  # what the person's list, read by this column, holds last
                    filed_last[person_id] = h
                if owner is not None:
                    # the person the record is about, not the column it is filed under: a newest
                    # record taken out of someone's list while the network was stopped stays their
                    # chain_head, so their list is seen to be incomplete
                    owners.moved(last_of.get(owner), owner, h)
                    last_of[owner] = (seq, h)
        if size is not None:
            while len(hashes) < size:
                problems.append(f"entry {len(hashes)} is missing")
                hashes.append(MISSING)
        return LeafState(hashes, problems, misattributed, last_of)

    @property
    def size(self) -> int:
        return self.frontier.size

    # --- appending -----------------------------------------------------------------------
    def transaction(self) -> AbstractContextManager[Appender]:
        """One business transaction that may append records; leaves count only once committed."""
        return self._appending(self.db.transaction)

    def core_transaction(self) -> AbstractContextManager[Appender]:
        """``transaction`` on a bare connection (Core statements only): the exchange path."""
        return self._appending(self.db.begin)

    @contextmanager
    def _appending(
        self, begin: Callable[[], AbstractContextManager[Session | Connection]]
    ) -> Iterator[Appender]:
        with self.lock:
            with begin() as s:
                appender = Appender(s, self.frontier.size, self.retention, self.last_of)
                yield appender
                appender.flush()
            for h in appender.added:
                self.frontier.append(h)
                self.cached.append(h)
            self.last_of.update(appender.newest)

    # --- tree heads ----------------------------------------------------------------------
    def latest_head(self) -> TreeHead | None:
        with self.db.transaction() as s:
            return newest_head(s)

    def tree_head(self) -> dict[str, Any] | None:
        """The newest signed tree head, signing one for the current size if the log grew."""
        with self.lock:
            head = self.latest_head()
            if self.corrupt is not None or self.frontier.size == 0:
                return head.document if head is not None else None
            if head is not None and head.tree_size == self.frontier.size:
                return head.document
            t = now()
            payload = {
                "log": self.creds.org_id,
                "tree_size": self.frontier.size,
                "root_hash": self.frontier.root().hex(),
                "timestamp": t.isoformat(timespec="milliseconds") + "Z",
            }
            doc = sign_document(self.creds, TREE_HEAD_KIND, payload)
            with self.db.transaction() as s:
                s.add(
                    TreeHead(
                        tree_size=payload["tree_size"],
                        root_hash=payload["root_hash"],
                        document=doc,
                        signed_at=t,
                    )
                )
            return doc

    def head_at(self, size: int) -> dict[str, Any] | None:
        with self.db.transaction() as s:
            head = s.get(TreeHead, size)
            return head.document if head is not None else None

    # --- proofs --------------------------------------------------------------------------
    def tree(self, size: int) -> tuple[Tree, list[str]]:
        """The kept tree (proofs for any size up to the log's) and the problems found at start."""
        if size > self.cached.size:  # a head larger than the entries: a corrupt log, recompute
            state = self.leaf_state(size)
            return Tree(state.hashes), state.problems
        return self.cached, list(self.load_problems)

    def chain_head(self, person_id: int, size: int) -> str | None:
        """The leaf hash (hex) of the person's newest record in the tree of ``size`` ("" if they have
        none), from the log's own memory — not from the person column a resident's list is read by;
        None when a newer record of theirs was appended since that tree (nothing to compare)."""
        newest = self.last_of.get(person_id)
        if newest is None:
            return ""
        return newest[1].hex() if newest[0] < size else None

    def check_entries(
        self, entries: list[tuple[int, str | None]], person_id: int
    ) -> tuple[list[str], set[int]]:
        """Entries read from the database now, filed under ``person_id``, that no longer hash to the
        leaf the log holds or whose record names another person (moved into this list): the
        problems, and the indexes of the records filed there wrongly."""
        problems = []
        misfiled: set[int] = set()
        for seq, text in entries:
            if text is None:
                continue
            if seq < self.cached.size and leaf_hash(text.encode()) != self.cached.levels[0][seq]:
                problems.append(f"entry {seq} does not match its recorded hash")
            elif not attributed_to(text, person_id):
                problems.append(MISFILED.format(seq=seq))
                misfiled.add(seq)
        return problems, misfiled

    def entries_of(self, person_id: int, size: int) -> list[tuple[int, str | None]]:
        with self.db.transaction() as s:
            return [
                (seq, leaf)
                for seq, leaf in s.execute(
                    select(LogEntry.seq, LogEntry.leaf)
                    .where(LogEntry.person_id == person_id, LogEntry.seq < size)
                    .order_by(LogEntry.seq)
                )
            ]

    def verify(self) -> dict[str, Any]:
        """A monitor's full check: every entry against its hash, every signed head against the entries."""
        state = self.leaf_state()
        tree = Tree(state.hashes)
        bad_heads = []
        with self.db.transaction() as s:
            heads = list(
                s.execute(select(TreeHead.tree_size, TreeHead.root_hash).order_by(TreeHead.tree_size))
            )
        for size, root in heads:
            if size > tree.size or tree.root_at(size).hex() != root:
                bad_heads.append(size)
        problems = list(state.problems) + state.misattributed
        if bad_heads:
            problems.append(f"signed heads no longer match the entries: tree sizes {bad_heads[:10]}")
        return {
            "entries": tree.size,
            "signed_heads": len(heads),
            "ok": not problems,
            "problems": problems,
            "corrupt_since_start": self.corrupt,
        }

    def purge(self, at: dt.datetime | None = None) -> int:
        """Erase the content of records past their retention; their hashes keep the tree provable."""
        t = at or now()
        with self.lock, self.db.transaction() as s:
            result = s.execute(
                update(LogEntry)
                .where(LogEntry.retain_until < t, LogEntry.leaf.is_not(None))
                .values(leaf=None)
            )
            return int(getattr(result, "rowcount", 0) or 0)


# Persons tried, at most, for one misfiled record whose chain and exchange row both fail (about
# 1.5 µs each: a start-up that finds such tampering pays a few seconds per record).
SEARCH_LIMIT = 2_000_000


class _ChainOwners:
    """Whose record a misfiled entry is, while the log is read at start: the person whose newest
    record it names as ``prev`` (its chain), else the person of its exchange, else — its first
    record, with the exchange row altered too — whichever of the network's persons its commitment
    names (tried one by one, up to ``SEARCH_LIMIT``).  Always only a person the record commits to;
    None when none is found: then it is still reported as misfiled, but counted as nobody's newest."""

    def __init__(self, db: Database):
        self.db = db
        self.by_newest: dict[bytes, int] = {}  # each person's newest leaf hash -> the person
        self._conn: Connection | None = None

    def __enter__(self) -> _ChainOwners:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            self._conn.close()

    def moved(self, before: tuple[int, bytes] | None, person: int, h: bytes) -> None:
        if before is not None:
            self.by_newest.pop(before[1], None)
        self.by_newest[h] = person

    def find(self, entry: dict[str, Any] | None, prev: str | None) -> int | None:
        if entry is None:
            return None
        if prev:
            try:
                person = self.by_newest.get(bytes.fromhex(prev))
            except ValueError:
                person = None
            if person is not None and _commits_to(entry, person):
                return person
        if self._conn is None:  # a second connection: the first is still reading the entries
            self._conn = self.db.engine.connect()
        exchange_id = entry.get("exchange_id")
        if isinstance(exchange_id, str):
            person = self._conn.execute(
                select(Exchange.person_id).where(Exchange.exchange_id == exchange_id)
            ).scalar()
            if person is not None and _commits_to(entry, person):
                return int(person)
        subject, salt = entry.get("subject"), str(entry.get("salt", ""))
        if not isinstance(subject, str):
            return None
        ids = self._conn.execute(select(Person.id).order_by(Person.id).limit(SEARCH_LIMIT)).scalars()
        return next((int(pid) for pid in ids if subject_of(salt, pid) == subject), None)


def leaf_of(text: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(text)
    return data
