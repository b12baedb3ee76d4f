"""Derived matching keys of a person's 4情報 (the raw values are always stored beside them)."""

from __future__ import annotations

from kojinbango.domain.address import address_key
from kojinbango.domain.text import kana_search_key, name_key


def person_keys(
    family_name: str, given_name: str, family_kana: str, given_kana: str, address: str
) -> dict[str, str]:
    """``name_key``, ``kana_key`` and ``address_key`` as every register and store indexes them."""
    return {
        "name_key": name_key(family_name + given_name),
        "kana_key": kana_search_key(family_kana + given_kana),
        "address_key": address_key(address),
    }
