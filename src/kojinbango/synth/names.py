"""Name tables: 氏 and 名 with matching katakana readings (フリガナ).

The tables live in ``data/surnames.txt``, ``data/surname_variants.txt`` and
``data/given_names.txt`` (hand-written, approximate frequencies; see the file headers).
No Faker/pykakasi: readings are stored with each spelling, so variant kanji such as
髙 (U+9AD9), 﨑 (U+FA11) or 𠮷 (U+20BB7) keep a correct reading.
"""

from __future__ import annotations

import bisect
import itertools
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Generic, TypeVar

__all__ = [
    "GivenName",
    "NameSampler",
    "Surname",
    "cohort_for_year",
    "given_name_table",
    "name_sampler",
    "surname_table",
]

T = TypeVar("T")

KATAKANA_RE = re.compile(r"^[\u30a1-\u30f6\u30fc]+$")  # ァ..ヶ and the 長音 mark ー

# 出生コーホート boundaries (first birth year of cohorts 2, 3 and 4).
_COHORT_STARTS = (1946, 1971, 1996)


@dataclass(frozen=True, slots=True)
class Surname:
    """A 氏 spelling with one reading and its population weight."""

    kanji: str
    kana: str
    weight: float
    base: str  # the common spelling this is a variant of (== kanji if not a variant)

    @property
    def is_variant(self) -> bool:
        return self.kanji != self.base


@dataclass(frozen=True, slots=True)
class GivenName:
    """A 名 with one reading, for one sex (1 男, 2 女) and birth cohort (1..4)."""

    kanji: str
    kana: str
    sex: int
    cohort: int
    weight: float


class _Weighted(Generic[T]):
    """Weighted choice with precomputed cumulative weights (bisect; O(log n) per draw)."""

    __slots__ = ("_cum", "_items", "_total")

    def __init__(self, items: Sequence[T], weights: Sequence[float]) -> None:
        if not items or len(items) != len(weights):
            raise ValueError("weighted table must be non-empty and aligned")
        self._items = tuple(items)
        self._cum = list(itertools.accumulate(weights))
        self._total = self._cum[-1]

    def pick(self, rng: random.Random) -> T:
        return self._items[bisect.bisect_right(self._cum, rng.random() * self._total)]

    @property
    def items(self) -> tuple[T, ...]:
        return self._items


def _data_lines(filename: str) -> list[list[str]]:
    text = resources.files("kojinbango.synth").joinpath("data").joinpath(filename).read_text(encoding="utf-8")
    rows = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            rows.append(line.split())
    return rows


def _check_kana(kana: str, where: str) -> str:
    if not KATAKANA_RE.match(kana):
        raise ValueError(f"{where}: reading {kana!r} is not full-width katakana")
    return kana


def _parse_readings(spec: str, where: str) -> list[tuple[str, float]]:
    out = []
    for part in spec.split(","):
        kana, _, share = part.partition("=")
        out.append((_check_kana(kana, where), float(share) if share else 1.0))
    total = sum(s for _, s in out)
    return [(k, s / total) for k, s in out]


@lru_cache(maxsize=1)
def surname_table() -> tuple[Surname, ...]:
    """Every (spelling, reading) pair with its weight; variants carry part of the base weight."""
    variants: dict[str, list[tuple[str, float]]] = {}
    for row in _data_lines("surname_variants.txt"):
        base, variant, share = row
        variants.setdefault(base, []).append((variant, float(share)))
    out: list[Surname] = []
    seen: set[str] = set()
    for row in _data_lines("surnames.txt"):
        kanji, readings, weight_s = row
        if kanji in seen:
            raise ValueError(f"surnames.txt: duplicate {kanji}")
        seen.add(kanji)
        weight = float(weight_s)
        vs = variants.pop(kanji, [])
        base_share = 1.0 - sum(s for _, s in vs)
        for kana, r_share in _parse_readings(readings, f"surnames.txt {kanji}"):
            out.append(Surname(kanji, kana, weight * base_share * r_share, kanji))
            for variant, v_share in vs:
                out.append(Surname(variant, kana, weight * v_share * r_share, kanji))
    if variants:
        raise ValueError(f"surname_variants.txt: unknown base surnames {sorted(variants)}")
    return tuple(out)


@lru_cache(maxsize=1)
def given_name_table() -> tuple[GivenName, ...]:
    out = []
    for row in _data_lines("given_names.txt"):
        sex_s, cohort_s, kanji, kana, weight_s = row
        sex = {"M": 1, "F": 2}[sex_s]
        out.append(
            GivenName(
                kanji, _check_kana(kana, f"given_names.txt {kanji}"), sex, int(cohort_s), float(weight_s)
            )
        )
    return tuple(out)


def cohort_for_year(year: int) -> int:
    """Naming cohort (1..4) for a birth year."""
    return 1 + bisect.bisect_right(_COHORT_STARTS, year)


class NameSampler:
    """Draws surnames and cohort-appropriate given names from a caller-supplied RNG."""

    def __init__(self) -> None:
        table = surname_table()
        self._surnames = _Weighted(table, [s.weight for s in table])
        self._given: dict[tuple[int, int], _Weighted[GivenName]] = {}
        by_key: dict[tuple[int, int], list[GivenName]] = {}
        for g in given_name_table():
            by_key.setdefault((g.sex, g.cohort), []).append(g)
        for key, names in by_key.items():
            self._given[key] = _Weighted(names, [g.weight for g in names])

    def surname(self, rng: random.Random) -> Surname:
        return self._surnames.pick(rng)

    def given(
        self, rng: random.Random, sex: int, birth_year: int, avoid: frozenset[str] | set[str] = frozenset()
    ) -> GivenName:
        """A 名 for someone of ``sex`` born in ``birth_year``.

        Names drift smoothly across cohort boundaries (±4 years of jitter).  Names whose
        kanji or reading is in ``avoid`` (siblings' names) are redrawn.
        """
        year = birth_year - 4 + int(rng.random() * 9)
        table = self._given[(sex, cohort_for_year(year))]
        g = table.pick(rng)
        tries = 0
        while (g.kanji in avoid or g.kana in avoid) and tries < 50:
            g = table.pick(rng)
            tries += 1
        return g


@lru_cache(maxsize=1)
def name_sampler() -> NameSampler:
    """Shared sampler (stateless apart from its tables)."""
    return NameSampler()
