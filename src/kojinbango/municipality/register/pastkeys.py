"""旧氏名・旧住所: which search keys an 異動 leaves behind (pure; used by the service and migration 0002)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kojinbango.domain.address import address_key
from kojinbango.domain.text import kana_search_key, name_key


def past_keys_of_event(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[dict[str, str]]:
    """The name, kana and address a person had before an 異動 and no longer has after it.

    ``before``/``after`` are 異動履歴 snapshots; an event with no ``before`` (出生, first 転入)
    leaves nothing behind."""
    out: list[dict[str, str]] = []
    name_b = f"{before.get('family_name') or ''}{before.get('given_name') or ''}"
    name_a = f"{after.get('family_name') or ''}{after.get('given_name') or ''}"
    if name_b and name_b != name_a:
        out.append(
            {"kind": "name", "key": name_key(name_b), "value": _spaced(before, "family_name", "given_name")}
        )
        kana_b = f"{before.get('family_kana') or ''}{before.get('given_kana') or ''}"
        if kana_b:
            out.append(
                {
                    "kind": "kana",
                    "key": kana_search_key(kana_b),
                    "value": _spaced(before, "family_kana", "given_kana"),
                }
            )
    addr_b, addr_a = before.get("address") or "", after.get("address") or ""
    if addr_b and addr_b != addr_a:
        out.append({"kind": "address", "key": address_key(addr_b), "value": addr_b})
    return out


def previous_address_key(address: str) -> dict[str, str]:
    """A 転入's 前住所 (from the 転出証明書 or typed for 国外からの転入) as a past-address key."""
    return {"kind": "address", "key": address_key(address), "value": address}


def _spaced(snap: Mapping[str, Any], first: str, second: str) -> str:
    return f"{snap.get(first) or ''}\u3000{snap.get(second) or ''}"
