"""Signed documents that outlive the HTTP exchange that carried them (論点7: 文書性).

A document is ``{"kind", "signer", "signed_at", "payload", "signature"}``; the signature is ECDSA
P-256/SHA-256 over the canonical JSON of everything but the signature, so anyone holding the
deployment's certificates can verify it later.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from kojinbango.common.pki import OrgCredentials
from kojinbango.common.signing import SignatureError, TrustStore


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def sign_document(creds: OrgCredentials, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "kind": kind,
        "signer": creds.org_id,
        "signed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "payload": payload,
    }
    sig = creds.key.sign(canonical(doc), ec.ECDSA(hashes.SHA256()))
    doc["signature"] = base64.b64encode(sig).decode()
    return doc


def verify_document(doc: dict[str, Any], trust: TrustStore, kind: str) -> tuple[str, dict[str, Any]]:
    """Return (signer, payload) of a genuine document of ``kind``; raise SignatureError otherwise."""
    try:
        body = {k: doc[k] for k in ("kind", "signer", "signed_at", "payload")}
        sig = base64.b64decode(doc["signature"])
    except (KeyError, TypeError, ValueError):
        raise SignatureError("document is incomplete or its signature is malformed") from None
    if body["kind"] != kind:
        raise SignatureError(f"document is a {body['kind']!r}, expected {kind!r}")
    key = trust.public_key(str(body["signer"]))
    try:
        key.verify(sig, canonical(body), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureError("document signature does not verify") from None
    return str(body["signer"]), dict(body["payload"])
