"""Signed documents that outlive the HTTP exchange that carried them (論点7: 文書性).

A document is ``{"kind", "signer", "signed_at", "payload"}`` and its proof of origin, in one of two
forms; anyone holding the deployment's certificates can verify either later, from the document
alone:

* ``"signature"``: ECDSA P-256/SHA-256 over the canonical JSON of the four fields.
* ``"batch"`` (batch signing, for documents one organisation signs together — an intermediate
  server's answers to one batch of queries): one signature for all of them.  Each document is a
  leaf of a Merkle tree (RFC 9162 §2.1 hashing) over ``salt || canonical JSON``; the signer signs
  the tree's head ``{"kind": "document_batch", "signer", "size", "root"}``, and each document
  carries its own ``salt``, ``index``, ``size``, inclusion ``path`` and the head's ``signature``.
  Changing any document changes its leaf, so it no longer leads to the signed root; the salt (16
  random bytes per document) keeps a document's siblings — which it shows only as hashes — from
  being guessed from their hashes.  A verifier checks a head's signature once and remembers it
  (``_HEADS``), so a batch costs one signature check, not one per document.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Sequence
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from kojinbango.common import merkle
from kojinbango.common.pki import OrgCredentials
from kojinbango.common.signing import SignatureError, TrustStore
from kojinbango.domain.clock import now_aware

BATCH_HEAD_KIND = "document_batch"
SALT_BYTES = 16
MAX_BATCH_SIZE = 1 << 16
MAX_PATH = 17  # the longest inclusion path in a tree of MAX_BATCH_SIZE leaves, and then some
_FIELDS = ("kind", "signer", "signed_at", "payload")


def canonical(obj: Any) -> bytes:
    """The signed form: ``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    default=str)`` as UTF-8, byte for byte — what was signed before must keep verifying.  orjson
    writes the same bytes for plain JSON (strings, 64-bit integers, booleans, null, lists, objects
    with string keys; property-tested against the standard library): 3 µs against 21 for an answer
    document, which is signed, relayed and checked several times per exchange.  Anything else — a
    float (orjson writes some differently: ``1e-7`` against ``1e-07``), a bigger integer, a tuple,
    another type — takes the standard library."""
    if _plain(obj):
        try:
            return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:  # a lone surrogate, too deep: the standard library decides
            pass
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


_INT_MIN, _INT_END = -(1 << 63), 1 << 64  # the integers orjson writes itself


def _plain(obj: Any) -> bool:
    """Only str, bool, None, 64-bit int, list and str-keyed dict, all the way down (by exact type:
    a subclass may write itself differently)."""
    stack = [obj]
    while stack:
        o = stack.pop()
        t = type(o)
        if t is str or t is bool or o is None:
            continue
        if t is int:
            if not _INT_MIN <= o < _INT_END:
                return False
        elif t is dict:
            for k, v in o.items():
                if type(k) is not str:
                    return False
                stack.append(v)
        elif t is list:
            stack.extend(o)
        else:
            return False
    return True


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _now() -> str:
    return now_aware().isoformat(timespec="seconds")


def _sign(creds: OrgCredentials, data: bytes) -> str:
    return _b64(creds.key.sign(data, ec.ECDSA(hashes.SHA256())))


def sign_document(creds: OrgCredentials, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {"kind": kind, "signer": creds.org_id, "signed_at": _now(), "payload": payload}
    doc["signature"] = _sign(creds, canonical(doc))
    return doc


def _head(signer: str, size: int, root: bytes) -> bytes:
    """What a batch's one signature covers (its own kind: never the canonical form of a document)."""
    return canonical({"kind": BATCH_HEAD_KIND, "signer": signer, "size": size, "root": _b64(root)})


def _leaf(salt: bytes, body: dict[str, Any]) -> bytes:
    return merkle.leaf_hash(salt + canonical(body))


def sign_documents(
    creds: OrgCredentials, kind: str, payloads: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Documents of ``kind`` for ``payloads``, in order, signed together (batch form); a single one
    is signed on its own (plain form)."""
    if len(payloads) <= 1:
        return [sign_document(creds, kind, p) for p in payloads]
    if len(payloads) > MAX_BATCH_SIZE:
        raise ValueError(f"at most {MAX_BATCH_SIZE} documents are signed together")
    signed_at = _now()
    docs: list[dict[str, Any]] = [
        {"kind": kind, "signer": creds.org_id, "signed_at": signed_at, "payload": p} for p in payloads
    ]
    salts = [os.urandom(SALT_BYTES) for _ in docs]
    tree = merkle.Tree([_leaf(salt, doc) for salt, doc in zip(salts, docs, strict=True)])
    signature = _sign(creds, _head(creds.org_id, tree.size, tree.root()))
    for i, (salt, doc) in enumerate(zip(salts, docs, strict=True)):
        path = [_b64(h) for h in tree.inclusion_proof(i)]
        doc["batch"] = {
            "salt": _b64(salt),
            "index": i,
            "size": tree.size,
            "path": path,
            "signature": signature,
        }
    return docs


class _Heads:
    """Batch heads whose signature was checked, with the key that checked it (bounded; a key the
    trust store replaced is a different object, so its heads are checked again)."""

    LIMIT = 4096

    def __init__(self) -> None:
        # by the key object's id as well: organisations in one process each hold their own trust
        # store; the key is kept with it, so its id is not reused while remembered
        self._ok: dict[tuple[bytes, bytes, int], ec.EllipticCurvePublicKey] = {}
        self._lock = threading.Lock()

    def verified(self, key: ec.EllipticCurvePublicKey, head: bytes, sig: bytes) -> bool:
        return self._ok.get((head, sig, id(key))) is key

    def remember(self, key: ec.EllipticCurvePublicKey, head: bytes, sig: bytes) -> None:
        with self._lock:
            if len(self._ok) >= self.LIMIT:
                self._ok.clear()
            self._ok[(head, sig, id(key))] = key


_HEADS = _Heads()


def _check(key: ec.EllipticCurvePublicKey, sig: bytes, signed: bytes) -> None:
    try:
        key.verify(sig, signed, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureError("document signature does not verify") from None


def _batch_proof(doc: dict[str, Any], body: dict[str, Any]) -> tuple[bytes, bytes]:
    """(the signed head, its signature) a batch-form document leads to; raises SignatureError if
    its proof is malformed."""
    try:
        batch = doc["batch"]
        salt = base64.b64decode(batch["salt"], validate=True)
        index, size = batch["index"], batch["size"]
        if not isinstance(batch["path"], list) or len(batch["path"]) > MAX_PATH:
            raise ValueError("not a path")  # checked before decoding: a huge list costs nothing
        path = [base64.b64decode(h, validate=True) for h in batch["path"]]
        sig = base64.b64decode(batch["signature"], validate=True)
    except (KeyError, TypeError, ValueError):
        raise SignatureError("document is incomplete or its signature is malformed") from None
    if (
        len(salt) != SALT_BYTES
        or type(index) is not int
        or type(size) is not int
        or not 0 <= index < size <= MAX_BATCH_SIZE
        or any(len(h) != 32 for h in path)
    ):
        raise SignatureError("document's batch proof is malformed")
    try:
        root = merkle.root_from_inclusion(_leaf(salt, body), index, size, path)
    except merkle.ProofError:
        raise SignatureError("document's batch proof is malformed") from None
    return _head(str(body["signer"]), size, root), sig


def verify_document(doc: dict[str, Any], trust: TrustStore, kind: str) -> tuple[str, dict[str, Any]]:
    """Return (signer, payload) of a genuine document of ``kind``; raise SignatureError otherwise."""
    try:
        body = {k: doc[k] for k in _FIELDS}
    except (KeyError, TypeError):
        raise SignatureError("document is incomplete or its signature is malformed") from None
    if body["kind"] != kind:
        raise SignatureError(f"document is a {body['kind']!r}, expected {kind!r}")
    if ("signature" in doc) == ("batch" in doc):
        raise SignatureError("document is incomplete or its signature is malformed")
    key = trust.public_key(str(body["signer"]))
    if "batch" in doc:
        head, sig = _batch_proof(doc, body)
        if not _HEADS.verified(key, head, sig):
            _check(key, sig, head)
            _HEADS.remember(key, head, sig)
    else:
        try:
            sig = base64.b64decode(doc["signature"])
        except (TypeError, ValueError):
            raise SignatureError("document is incomplete or its signature is malformed") from None
        _check(key, sig, canonical(body))
    return str(body["signer"]), dict(body["payload"])
