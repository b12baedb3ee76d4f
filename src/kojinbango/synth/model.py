"""Value objects produced by the synthetic-nation generator."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

__all__ = ["HouseholdSpec", "PersonSpec", "full_kana", "full_name"]

IDEOGRAPHIC_SPACE = "\u3000"


@dataclass(frozen=True, slots=True)
class PersonSpec:
    """One synthetic resident (住民) as the 住民票 would record them."""

    family_name: str  # 氏, e.g. "髙橋"
    given_name: str  # 名
    family_kana: str  # full-width katakana, e.g. "タカハシ"
    given_kana: str
    birth_date: datetime.date
    sex: int  # 1 男, 2 女
    relationship: str  # 続柄 to the 世帯主
    resident_since: datetime.date  # 住民となった年月日


@dataclass(frozen=True, slots=True)
class HouseholdSpec:
    """One synthetic household (世帯); ``members[0]`` is the 世帯主."""

    postal_code: str  # 7 digits, no hyphen
    address: str  # full 住所 as written on the register, without 方書
    address_extra: str  # 方書 (building/room) or ""
    members: tuple[PersonSpec, ...]

    @property
    def head(self) -> PersonSpec:
        return self.members[0]


def full_name(p: PersonSpec) -> str:
    """氏名 as printed: 氏 + U+3000 + 名."""
    return f"{p.family_name}{IDEOGRAPHIC_SPACE}{p.given_name}"


def full_kana(p: PersonSpec) -> str:
    """氏名のフリガナ: 氏 kana + U+3000 + 名 kana."""
    return f"{p.family_kana}{IDEOGRAPHIC_SPACE}{p.given_kana}"
