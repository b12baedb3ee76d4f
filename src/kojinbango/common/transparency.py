"""Checking the network's provision records as a resident (or the portal on their behalf) can.

The network sends a bundle: its signed tree head, each record (the exact leaf text) with its index
and inclusion proof, and a consistency proof from a tree head seen before.  Everything is checked
here with the network's certificate alone: a record altered or removed in the network's database, or
a history rewritten since the last visit, makes a proof fail.

The list is also checked for completeness: each record names the leaf hash of the same person's
previous record (``prev``, "" for their first), so a record taken out of the list — deleted from
the network's index or moved to another person — breaks the chain at the next record
(``chain_valid`` false); the network also says which record of the person is the newest
(``chain_head``, from its own memory of the log), and the list must end with it.  A record erased
after its retention period comes as its leaf hash alone; its inclusion is still proven and the chain
runs through it.
"""

from __future__ import annotations

import json
from typing import Any

from kojinbango.common.documents import verify_document
from kojinbango.common.linkage import TREE_HEAD_KIND
from kojinbango.common.merkle import ProofError, leaf_hash, verify_consistency, verify_inclusion
from kojinbango.common.signing import SignatureError, TrustStore


def check_head(head: dict[str, Any], trust: TrustStore, network: str) -> dict[str, Any]:
    """The payload of a genuine tree head signed by ``network``; SignatureError otherwise."""
    signer, payload = verify_document(head, trust, TREE_HEAD_KIND)
    if signer != network:
        raise SignatureError("the tree head is not signed by the network")
    return payload


def prev_of(entry: dict[str, Any] | None) -> str | None:
    """The leaf hash (hex) of the person's previous record that a record names ("" for their first);
    None for a record written before the chain existed."""
    prev = entry.get("prev") if entry is not None else None
    return prev if isinstance(prev, str) else None


def _index(record: dict[str, Any]) -> int:
    try:
        return int(record.get("index", -1))
    except (TypeError, ValueError):
        return -1


def check_bundle(
    bundle: dict[str, Any], trust: TrustStore, network: str, known: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Verify a records bundle; ``known`` is a tree head payload the checker trusted before.

    Returns ``{"tree_size", "root_hash", "head_valid", "consistent", "problem", "records": [...],
    "complete"}`` with each record's fields, ``proof_valid`` (and ``proof_error`` when it fails),
    ``chain_valid`` (does it follow the record before it in this list; None for a record older than
    the chain or erased), ``erased`` and ``leaf_hash``.  ``complete`` is false when a record is
    missing before any record of the list, or after the last (``chain_head``).
    """
    out: dict[str, Any] = {
        "head_valid": False,
        "consistent": None,
        "problem": "",
        "records": [],
        "complete": True,
    }
    head = bundle.get("tree_head")
    payload: dict[str, Any] | None = None
    if head is not None:
        try:
            payload = check_head(head, trust, network)
            out["head_valid"] = True
            out["tree_size"], out["root_hash"] = int(payload["tree_size"]), str(payload["root_hash"])
        except (SignatureError, KeyError, ValueError) as exc:
            out["problem"] = f"the tree head does not verify: {exc}"
    if payload is not None and known is not None:
        old_size, old_root = int(known["tree_size"]), bytes.fromhex(str(known["root_hash"]))
        new_size, new_root = int(payload["tree_size"]), bytes.fromhex(str(payload["root_hash"]))
        try:
            proof = [bytes.fromhex(h) for h in bundle.get("consistency") or []]
            if new_size < old_size:
                raise ProofError("the log is smaller than when it was last seen")
            verify_consistency(old_size, new_size, old_root, new_root, proof)
            out["consistent"] = True
        except (ProofError, ValueError) as exc:
            out["consistent"] = False
            out["problem"] = f"the log is not consistent with the tree head seen before: {exc}"
    previous = ""  # leaf hash (hex) of the record before in this list: what the next one must name
    records = sorted(bundle.get("records", []), key=_index)
    for rec in records:
        text = rec.get("leaf")
        entry: dict[str, Any] = {}
        prev: str | None = None
        if isinstance(text, str):
            try:
                parsed = json.loads(text)
                prev = prev_of(parsed)
                entry = {k: v for k, v in parsed.items() if k not in ("salt", "subject", "v", "prev")}
            except (ValueError, AttributeError):
                entry = {}
        entry["index"] = rec.get("index")
        entry["erased"] = text is None and isinstance(rec.get("leaf_hash"), str)
        entry["chain_valid"] = None if prev is None else prev == previous
        if entry["chain_valid"] is False:
            out["complete"] = False
        try:
            hashed = (
                leaf_hash(text.encode())
                if isinstance(text, str)
                else bytes.fromhex(str(rec.get("leaf_hash")))
            )
        except ValueError:
            hashed = b""
        previous = entry["leaf_hash"] = hashed.hex()
        if payload is None or not hashed:
            entry["proof_valid"] = False
            entry["proof_error"] = "no verifiable tree head or record text"
        else:
            try:
                verify_inclusion(
                    hashed,
                    int(rec["index"]),
                    int(payload["tree_size"]),
                    [bytes.fromhex(h) for h in rec.get("proof", [])],
                    bytes.fromhex(str(payload["root_hash"])),
                )
                entry["proof_valid"] = True
            except (ProofError, ValueError, KeyError) as exc:
                entry["proof_valid"] = False
                entry["proof_error"] = str(exc)
        out["records"].append(entry)
    # The network's word on which record of this person is the newest: the list must end with it
    # (a record taken out at the end leaves no gap in the chain).
    head_of_chain = bundle.get("chain_head")
    if isinstance(head_of_chain, str) and head_of_chain != previous:
        out["complete"] = False
        out["chain_head_matches"] = False
    return out
