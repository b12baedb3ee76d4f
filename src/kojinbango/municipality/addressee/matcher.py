"""The matcher of step 3-0: which person is this business record about?  (No I/O: pure and fast.)

Blocking, then comparison of the normalised 4情報, the フリガナ and the register's history (past names
and addresses).  The rule that decides (DOMAIN.md §9.6):

* **link** only when exactly one person agrees on 氏名 + 生年月日 + 住所 after normalisation (性別 may
  disagree: the 3情報 without 性別 identify a person, as 住基ネット's own rule says); a past name or a
  past address from the register's history counts as agreeing;
* and even then not when another person shares that 氏名 and 生年月日 (同姓同名同生年月日 — the 2023
  mis-linkages), when the record's フリガナ contradicts the person's, or when staff already said
  "not this person";
* everything else with a plausible candidate goes to **review**, candidates ranked with reasons;
* a record with no plausible candidate is **none** (the caller may then ask 住基ネット, for 住登外者).

Agreement on 氏名 alone, or on 氏名 + 生年月日 alone, never links.  Twins share 生年月日, 住所 and 氏
but not 名, so a record of one twin never agrees on 氏名 with the other.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from kojinbango.domain.address import PREFECTURES, address_key
from kojinbango.domain.text import kana_search_key, name_key

# Agreement levels of one field between a record and a person.
EXACT, HISTORY, SIMILAR, GIVEN, DIFFERS, MISSING = (
    "exact",
    "history",
    "similar",
    "given",
    "differs",
    "missing",
)

FIELD_LABELS: Final = {
    "name": "氏名",
    "kana": "フリガナ",
    "birth": "生年月日",
    "sex": "性別",
    "address": "住所",
}
LEVEL_LABELS: Final = {
    EXACT: "一致",
    HISTORY: "履歴と一致",
    SIMILAR: "類似",
    GIVEN: "名のみ一致",
    DIFFERS: "不一致",
    MISSING: "記載なし",
}
_WEIGHTS: Final = {
    "name": {EXACT: 2.0, HISTORY: 2.0, SIMILAR: 1.0, GIVEN: 1.0},
    "kana": {EXACT: 1.0, HISTORY: 1.0, SIMILAR: 0.5, GIVEN: 0.5},
    "birth": {EXACT: 2.0, SIMILAR: 1.0},
    "sex": {EXACT: 0.5},
    "address": {EXACT: 2.0, HISTORY: 1.5},
}
PLAUSIBLE: Final = 4.0  # a candidate below this score is not worth a reviewer's time
MAX_CANDIDATES: Final = 5

# Review reasons (codes; the staff screens show the Japanese).
R_SEVERAL = "several_agree"
R_NAMESAKE = "namesake"
R_KANA = "kana_contradicts"
R_REJECTED = "staff_rejected"
R_PARTIAL = "partial_agreement"
REASON_LABELS: Final = {
    R_SEVERAL: "複数の人が氏名・生年月日・住所で一致する",
    R_NAMESAKE: "同じ氏名・生年月日の別人がいる（同姓同名同生年月日）",
    R_KANA: "フリガナが候補者と一致しない",
    R_REJECTED: "職員が「本人ではない」と判断した候補",
    R_PARTIAL: "4情報の一部だけが一致する",
}


# --------------------------------------------------------------------------------------------
# keys


_BLOCK_RE: Final = re.compile(r"^[^0-9]*[0-9][0-9-]*")


class Keys:
    """Normalising functions with memo tables (names and addresses repeat a lot in a register)."""

    def __init__(self, home: Sequence[str] = ()):
        # home: the municipality's own prefecture and city as written ("東京都", "千代田区"); a business
        # system often leaves them out of its addresses.
        self.home = tuple(name_key(h) for h in home if h)
        self._names: dict[str, str] = {}
        self._kanas: dict[str, str] = {}
        self._addresses: dict[str, str] = {}

    def name(self, raw: str) -> str:
        k = self._names.get(raw)
        if k is None:
            k = self._names[raw] = name_key(raw)
        return k

    def kana(self, raw: str) -> str:
        if not raw or not raw.strip():
            return ""
        k = self._kanas.get(raw)
        if k is None:
            k = self._kanas[raw] = kana_search_key(raw)
        return k

    def address(self, raw: str) -> str:
        """Local address key: ``address_key``, without this municipality's prefecture and city, and
        cut after the 番地 numbers (the 方書 — building and room — does not decide agreement)."""
        k = self._addresses.get(raw)
        if k is None:
            k = self._addresses[raw] = self.local(address_key(street_part(raw)))
        return k

    def local(self, key: str) -> str:
        for pref in PREFECTURES:
            if key.startswith(pref):
                rest = key[len(pref) :]
                if len(self.home) >= 1 and pref != self.home[0]:
                    return key  # another prefecture: keep it whole
                key = rest
                break
        if len(self.home) >= 2 and key.startswith(self.home[1]):
            key = key[len(self.home[1]) :]
        m = _BLOCK_RE.match(key)
        return m.group().rstrip("-") if m else key

    def is_local(self, raw: str) -> bool:
        """Whether an address lies in this municipality (or names no prefecture/city at all)."""
        key = address_key(raw)
        for pref in PREFECTURES:
            if key.startswith(pref):
                if self.home and pref != self.home[0]:
                    return False
                key = key[len(pref) :]
                break
        if len(self.home) >= 2:
            if key.startswith(self.home[1]):
                return True
            # names another city/ward/town/village before the town name?
            return not re.match(r"^[^0-9]{1,6}?[市区]", key)
        return True


_WS_RE: Final = re.compile(r"\s+")
_HAS_NUMBER_RE: Final = re.compile(r"[0-9０-９]|[〇一二三四五六七八九十]+(?:丁目|番地|番(?!町)|号)")


# A 方書 glued to the numbers: "40番地四番町マンション", "2-1-2ABCビル" — a space goes in before it.
_GLUED_EXTRA_RE: Final = re.compile(
    r"(?:(?<=番地)|(?<=[0-9０-９号]))(?=[^\s0-9０-９\-－ー‐―−丁番号の之ノ条線地])"
)


def street_part(raw: str) -> str:
    """The address without a 方書 written after a space: "…2-1-2　ABCビル101" → "…2-1-2".

    Cut at the first whitespace after the street numbers have begun (spaces between prefecture,
    city and town are kept), so the building's name or room number never reads as a 番地.
    """
    parts = _WS_RE.split(_GLUED_EXTRA_RE.sub(" ", raw.strip()))
    for i in range(len(parts)):
        head = "".join(parts[: i + 1])
        if _HAS_NUMBER_RE.search(head):
            return head
    return "".join(parts)


# --------------------------------------------------------------------------------------------
# facts


@dataclass(frozen=True, slots=True)
class PersonFacts:
    """A person as the matcher sees them: keys of current values first, then the history."""

    pid: int  # 統合宛名 internal id
    names: tuple[str, ...]  # 氏名 keys (current, then former names)
    givens: tuple[str, ...]  # 名 keys
    kanas: tuple[str, ...]  # フリガナ keys ("" when unknown)
    given_kanas: tuple[str, ...]
    birth: dt.date
    sex: int
    addresses: tuple[str, ...]  # local address keys (current, then former addresses)
    status: str = "active"  # active | moved_out | dead | non_resident


@dataclass(frozen=True, slots=True)
class RecordFacts:
    """A business record's keys."""

    name: str
    kana: str  # "" when the record has none
    birth: dt.date
    sex: int
    address: str


@dataclass
class Comparison:
    pid: int
    levels: dict[str, str]
    score: float

    @property
    def strong(self) -> bool:
        lv = self.levels
        return lv["name"] in (EXACT, HISTORY) and lv["birth"] == EXACT and lv["address"] in (EXACT, HISTORY)

    @property
    def plausible(self) -> bool:
        """Worth a reviewer's time: enough agreement, and some of it on the name (氏名 or フリガナ)."""
        named = self.levels["name"] != DIFFERS or self.levels["kana"] not in (DIFFERS, MISSING)
        return self.score >= PLAUSIBLE and named

    @property
    def name_and_birth(self) -> bool:
        return self.levels["name"] in (EXACT, HISTORY) and self.levels["birth"] == EXACT

    def as_dict(self) -> dict[str, Any]:
        return {"addressee_id": self.pid, "score": round(self.score, 2), "levels": dict(self.levels)}


@dataclass
class Decision:
    """``link`` (``pid`` set), ``review`` (ranked ``candidates``) or ``none``."""

    outcome: str
    pid: int | None = None
    candidates: list[Comparison] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def candidates_json(self) -> list[dict[str, Any]]:
        return [c.as_dict() for c in self.candidates]


# --------------------------------------------------------------------------------------------
# comparison


def within_one_edit(a: str, b: str) -> bool:
    """Levenshtein distance ≤ 1 (one character typed wrong, left out or added)."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1 or not a or not b:
        return False
    if la == lb:
        diff = 0
        for x, y in zip(a, b, strict=True):
            if x != y:
                diff += 1
                if diff > 1:
                    return False
        return True
    if la > lb:
        a, b, la, lb = b, a, lb, la
    i = 0
    while i < la and a[i] == b[i]:
        i += 1
    return a[i:] == b[i + 1 :]


def _birth_level(a: dt.date, b: dt.date) -> str:
    if a == b:
        return EXACT
    sa, sb = a.strftime("%Y%m%d"), b.strftime("%Y%m%d")
    if sum(x != y for x, y in zip(sa, sb, strict=True)) == 1:
        return SIMILAR  # one digit typed wrong
    if a.year == b.year and a.month == b.day and a.day == b.month:
        return SIMILAR  # month and day swapped
    return DIFFERS


def compare(rec: RecordFacts, p: PersonFacts) -> Comparison:
    lv: dict[str, str] = {}
    # 氏名
    if rec.name == p.names[0]:
        lv["name"] = EXACT
    elif rec.name in p.names[1:]:
        lv["name"] = HISTORY
    elif any(g and len(rec.name) > len(g) and rec.name.endswith(g) for g in p.givens):
        lv["name"] = GIVEN  # 名 agrees, 氏 differs (旧姓, 婚姻 …)
    elif within_one_edit(rec.name, p.names[0]):
        lv["name"] = SIMILAR
    else:
        lv["name"] = DIFFERS
    # フリガナ
    if not rec.kana or not p.kanas[0]:
        lv["kana"] = MISSING
    elif rec.kana == p.kanas[0]:
        lv["kana"] = EXACT
    elif rec.kana in p.kanas[1:]:
        lv["kana"] = HISTORY
    elif within_one_edit(rec.kana, p.kanas[0]):
        lv["kana"] = SIMILAR
    elif any(g and len(rec.kana) > len(g) and rec.kana.endswith(g) for g in p.given_kanas):
        lv["kana"] = GIVEN
    else:
        lv["kana"] = DIFFERS
    lv["birth"] = _birth_level(rec.birth, p.birth)
    lv["sex"] = EXACT if rec.sex == p.sex else DIFFERS
    if rec.address == p.addresses[0]:
        lv["address"] = EXACT
    elif rec.address in p.addresses[1:]:
        lv["address"] = HISTORY
    else:
        lv["address"] = DIFFERS
    score = sum(_WEIGHTS[f].get(level, 0.0) for f, level in lv.items())
    return Comparison(p.pid, lv, score)


# --------------------------------------------------------------------------------------------
# the index and the decision


class Matcher:
    """Blocking index over persons; ``decide`` applies the rule to one record."""

    def __init__(self, persons: Iterable[PersonFacts] = ()):
        self.persons: dict[int, PersonFacts] = {}
        self._index: dict[str, int | list[int]] = {}
        for p in persons:
            self.add(p)

    def __len__(self) -> int:
        return len(self.persons)

    def _put(self, key: str, pid: int) -> None:
        cur = self._index.get(key)
        if cur is None:
            self._index[key] = pid
        elif isinstance(cur, list):
            if pid not in cur:
                cur.append(pid)
        elif cur != pid:
            self._index[key] = [cur, pid]

    @staticmethod
    def _keys(
        names: Iterable[str], kanas: Iterable[str], birth: dt.date, addresses: Iterable[str]
    ) -> set[str]:
        b = str(birth.toordinal())
        addrs = [a for a in addresses if a]
        keys = set()
        for n in names:
            keys.add(f"nb\x1f{n}\x1f{b}")
            for a in addrs:
                keys.add(f"na\x1f{n}\x1f{a}")
        for k in kanas:
            if k:
                keys.add(f"kb\x1f{k}\x1f{b}")
        for a in addrs:
            keys.add(f"ba\x1f{b}\x1f{a}")
        return keys

    def add(self, p: PersonFacts) -> None:
        """Add (or replace) a person; incremental, as new 統合宛名 appear."""
        self.persons[p.pid] = p
        for key in self._keys(p.names, p.kanas, p.birth, p.addresses):
            self._put(key, p.pid)

    def candidates(self, rec: RecordFacts) -> set[int]:
        found: set[int] = set()
        for key in self._keys((rec.name,), (rec.kana,), rec.birth, (rec.address,)):
            hit = self._index.get(key)
            if hit is None:
                continue
            if isinstance(hit, list):
                found.update(hit)
            else:
                found.add(hit)
        return found

    def decide(self, rec: RecordFacts, rejected: Iterable[int] = ()) -> Decision:
        pids = self.candidates(rec)
        if not pids:
            return Decision("none")
        rejected_set = set(rejected)
        comps = sorted((compare(rec, self.persons[pid]) for pid in pids), key=lambda c: (-c.score, c.pid))
        strong = [c for c in comps if c.strong]
        plausible = [c for c in comps if c.plausible and c.pid not in rejected_set]
        if len(strong) == 1:
            c = strong[0]
            reasons = []
            if c.pid in rejected_set:
                reasons.append(R_REJECTED)
            if sum(1 for x in comps if x.name_and_birth) > 1:
                reasons.append(R_NAMESAKE)
            if c.levels["kana"] in (DIFFERS, GIVEN):
                reasons.append(R_KANA)
            if not reasons:
                return Decision("link", c.pid, comps[:MAX_CANDIDATES])
            if not plausible:
                return Decision("none", None, [], reasons)
            return Decision("review", None, plausible[:MAX_CANDIDATES], reasons)
        if not plausible:
            return Decision("none")
        reasons = [R_SEVERAL] if len(strong) > 1 else [R_PARTIAL]
        return Decision("review", None, plausible[:MAX_CANDIDATES], reasons)


def record_facts(keys: Keys, name: str, kana: str, birth: dt.date, sex: int, address: str) -> RecordFacts:
    return RecordFacts(keys.name(name), keys.kana(kana), birth, sex, keys.address(address))


def person_facts(
    keys: Keys,
    pid: int,
    names: Sequence[tuple[str, str]],  # (氏, 名) current first
    kanas: Sequence[tuple[str, str]],  # (氏カナ, 名カナ) current first
    birth: dt.date,
    sex: int,
    addresses: Sequence[str],  # raw addresses, current first
    status: str = "active",
) -> PersonFacts:
    def uniq(xs: Iterable[str]) -> tuple[str, ...]:
        out: list[str] = []
        for x in xs:
            if x not in out:
                out.append(x)
        return tuple(out)

    name_keys = uniq(keys.name(f + g) for f, g in names)
    givens = uniq(keys.name(g) for _, g in names if g)
    kana_keys = uniq(keys.kana(f + g) for f, g in kanas) or ("",)
    given_kanas = uniq(keys.kana(g) for _, g in kanas if g)
    addr_keys = uniq(keys.address(a) for a in addresses if a and a.strip())
    return PersonFacts(pid, name_keys, givens, kana_keys, given_kanas, birth, sex, addr_keys or ("",), status)


Lookup = Callable[[dict[str, Any]], dict[str, Any]]
