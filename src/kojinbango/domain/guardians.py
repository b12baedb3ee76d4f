"""法定代理人 at the card counter: who must set an under-15 holder's PINs, and who may (no I/O).

DOMAIN.md §6.2: "for under-15s the 利用者証明用 PIN is set by the 法定代理人" (minamiashigara, inacity).
kojinbango applies it to every PIN the counter sets for such a holder (at hand-over, at a 申請時来庁方式
application and at a PIN reset), since the three 4-digit PINs are set together.

Who counts as the 法定代理人 here is kojinbango's own narrowing, kept in this one module: a parent
(親権者) living in the holder's household, read from the 続柄 to the 世帯主, at least 18 years old.
A guardian (未成年後見人) or a parent living elsewhere is not recognised by the register alone.
"""

from __future__ import annotations

import datetime as dt

from kojinbango.domain.cards import ADULT_AGE, age_on
from kojinbango.domain.relationships import HOUSEHOLD_HEAD, validate_relationship

PIN_BY_LEGAL_REPRESENTATIVE_UNDER = 15
"""Below this age the holder's PINs are set (and reset) by the 法定代理人 (§6.2)."""

_SPOUSES = ("夫", "妻", "夫（未届）", "妻（未届）")
_SIBLINGS = ("兄", "姉", "弟", "妹")


def pin_needs_legal_representative(birth_date: dt.date, day: dt.date) -> bool:
    """True when a holder born on ``birth_date`` is under 15 on ``day``."""
    return age_on(birth_date, day) < PIN_BY_LEGAL_REPRESENTATIVE_UNDER


def may_act_as_legal_representative(birth_date: dt.date, day: dt.date) -> bool:
    """A 法定代理人 (親権者) acting at the counter must be of age (18)."""
    return age_on(birth_date, day) >= ADULT_AGE


def parents_of(relationship: str) -> frozenset[str]:
    """The 続柄 (to the same 世帯主) of the people who are the parents of someone whose 続柄 is
    ``relationship``; empty when the register cannot tell.

    子 → 世帯主 and the 世帯主's spouse; 世帯主, 兄, 姉, 弟, 妹 → 父, 母; X の子 → X and X's spouse
    (子の子 → 子, 子の夫, 子の妻, 子（子の夫）, 子（子の妻）).  A spouse's child from another
    relationship is written 妻の子 / 夫の子, so its parent is 妻 / 夫 alone, not the 世帯主.
    """
    try:
        rel = validate_relationship(relationship)
    except (ValueError, TypeError):
        return frozenset()
    if rel == "子":
        return frozenset((HOUSEHOLD_HEAD, *_SPOUSES))
    if rel == HOUSEHOLD_HEAD or rel in _SIBLINGS:
        return frozenset(("父", "母"))
    if rel.endswith("の子"):
        parent = rel[: -len("の子")]
        if parent in _SPOUSES:
            return frozenset((parent,))
        spouses = {f"{parent}の{s}" for s in ("夫", "妻")}
        if parent == "子":
            spouses |= {"子（子の夫）", "子（子の妻）"}
        return frozenset((parent, *spouses))
    return frozenset()


def is_parent(child_relationship: str, other_relationship: str) -> bool:
    """Whether the household member with ``other_relationship`` is a parent of the one with
    ``child_relationship`` (both relative to the same 世帯主)."""
    try:
        other = validate_relationship(other_relationship)
    except (ValueError, TypeError):
        return False
    return other in parents_of(child_relationship)
