"""Signed HTTP messages between organisations (HTTP Message Signatures, RFC 9421 shape).

Every request and every answer between organisations carries ``Content-Digest`` (RFC 9530),
``Signature-Input`` and ``Signature`` headers.  The signature covers the method, path, query, body
digest and the intended recipient, with a creation time and a single-use nonce, so a receiver can
refuse a request that is unsigned, signed by an organisation it does not trust for that call,
altered, addressed to someone else, stale, or replayed.  Answers are signed the same way and bound
to the request's nonce, so the querier can keep them as signed evidence (論点7: 文書性).

Between organisations every message is signed with the sender's key (ECDSA P-256).  An
organisation's *internal* interfaces — its own systems and kojinbango commands calling it — may
instead carry an HMAC-SHA256 (RFC 9421 §3.3.3, ``hmac-sha256``) under ``InternalKey``, a secret
derived from the organisation's private key: only holders of that key can make or check one, as
with the signature, at a tenth of its cost.  A MAC is evidence for nobody else, so it is accepted
only on internal interfaces and by the organisation itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kojinbango.common.pki import CertificateError, OrgCredentials, verify_org_certificate

ALG = "ecdsa-p256-sha256"
MAC_ALG = "hmac-sha256"  # internal interfaces only (InternalKey)
_INTERNAL_INFO = b"kojinbango internal interfaces v1\x00"
RECIPIENT_HEADER = "kojinbango-recipient"
REQUEST_NONCE_HEADER = "kojinbango-request-nonce"
REQUEST_COMPONENTS = ("@method", "@path", "@query", "content-digest", RECIPIENT_HEADER)
RESPONSE_COMPONENTS = ("@status", "content-digest", REQUEST_NONCE_HEADER)
MAX_SKEW_SECONDS = 300

_INPUT_RE = re.compile(r'^sig1=\((?P<components>[^)]*)\)(?P<params>(;[a-z]+=("[^"]*"|\d+))*)$')
_PARAM_RE = re.compile(r';([a-z]+)=("([^"]*)"|(\d+))')
_SIG_RE = re.compile(r"^sig1=:(?P<sig>[A-Za-z0-9+/=]+):$")


class SignatureError(Exception):
    """A message's signature is missing, invalid, stale, replayed or from an untrusted signer."""


@dataclass(frozen=True)
class Verified:
    """Who signed a message, and the nonce and time it carried."""

    signer: str
    nonce: str
    created: int
    mac: bool = False  # made with the signer's InternalKey (an internal interface), not its key pair


@dataclass(frozen=True)
class InternalKey:
    """The MAC key of an organisation's internal interfaces: HKDF-SHA256 of its private key's
    scalar, bound to its id.  Whoever holds the organisation's key (its services, its kojinbango
    commands) derives the same one; a replaced key gives a new one."""

    org_id: str
    secret: bytes = field(repr=False)

    @staticmethod
    def of(creds: OrgCredentials) -> InternalKey:
        """Derived afresh (a few µs): its users — a middleware, a client — keep the one they made."""
        scalar = creds.key.private_numbers().private_value.to_bytes(32, "big")
        hkdf = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=_INTERNAL_INFO + creds.org_id.encode()
        )
        return InternalKey(creds.org_id, hkdf.derive(scalar))

    def mac(self, data: bytes) -> bytes:
        return hmac.new(self.secret, data, hashlib.sha256).digest()


class TrustStore:
    """The deployment CA and the certificates of the organisations this one talks to."""

    def __init__(self, ca_cert: x509.Certificate, certificates: Mapping[str, x509.Certificate]):
        self.ca_cert = ca_cert
        self._keys: dict[str, ec.EllipticCurvePublicKey] = {}
        for org_id, cert in certificates.items():
            verify_org_certificate(cert, ca_cert, org_id)
            key = cert.public_key()
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise CertificateError(f"certificate for {org_id} does not hold an EC key")
            self._keys[org_id] = key

    def public_key(self, org_id: str) -> ec.EllipticCurvePublicKey:
        try:
            return self._keys[org_id]
        except KeyError:
            raise SignatureError("signer is not an organisation of this deployment") from None

    def __contains__(self, org_id: object) -> bool:
        return org_id in self._keys


def content_digest(body: bytes) -> str:
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"


def _component_value(name: str, values: Mapping[str, str]) -> str:
    try:
        return values[name]
    except KeyError:
        raise SignatureError(f"signed component {name} is missing from the message") from None


def _signature_base(components: tuple[str, ...], values: Mapping[str, str], params: str) -> bytes:
    lines = [f'"{c}": {_component_value(c, values)}' for c in components]
    inner = " ".join(f'"{c}"' for c in components)
    lines.append(f'"@signature-params": ({inner}){params}')
    return "\n".join(lines).encode()


def _sign(
    creds: OrgCredentials,
    components: tuple[str, ...],
    values: Mapping[str, str],
    internal: InternalKey | None = None,
) -> dict[str, str]:
    created = int(time.time())
    nonce = secrets.token_urlsafe(18)
    alg = ALG if internal is None else MAC_ALG
    params = f';created={created};nonce="{nonce}";keyid="{creds.org_id}";alg="{alg}"'
    base = _signature_base(components, values, params)
    if internal is None:
        der = creds.key.sign(base, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        if internal.org_id != creds.org_id:
            raise ValueError("an internal key is used only by its own organisation")
        raw = internal.mac(base)
    inner = " ".join(f'"{c}"' for c in components)
    return {
        "signature-input": f"sig1=({inner}){params}",
        "signature": "sig1=:" + base64.b64encode(raw).decode() + ":",
    }


def _verify(
    headers: Mapping[str, str],
    required: tuple[str, ...],
    values: Mapping[str, str],
    body: bytes,
    trust: TrustStore,
    now: float | None,
    internal: InternalKey | None = None,
) -> Verified:
    sig_input = headers.get("signature-input")
    sig_value = headers.get("signature")
    digest = headers.get("content-digest")
    if not sig_input or not sig_value or not digest:
        raise SignatureError("message is not signed")
    if digest != content_digest(body):
        raise SignatureError("body does not match its Content-Digest")
    m = _INPUT_RE.match(sig_input)
    sm = _SIG_RE.match(sig_value)
    if not m or not sm:
        raise SignatureError("malformed Signature-Input or Signature header")
    components = tuple(c.strip('"') for c in m.group("components").split())
    missing = [c for c in required if c not in components]
    if missing:
        raise SignatureError("signature does not cover " + ", ".join(missing))
    params: dict[str, str] = {}
    for pm in _PARAM_RE.finditer(m.group("params")):
        params[pm.group(1)] = pm.group(3) if pm.group(3) is not None else pm.group(4)
    alg = params.get("alg")
    if alg not in (ALG, MAC_ALG) or not params.get("keyid") or not params.get("nonce"):
        raise SignatureError("signature parameters are incomplete")
    try:
        created = int(params["created"])
    except (KeyError, ValueError):
        raise SignatureError("signature has no creation time") from None
    current = time.time() if now is None else now
    if abs(current - created) > MAX_SKEW_SECONDS:
        raise SignatureError("signature is too old or from the future")
    signer = params["keyid"]
    if alg == MAC_ALG and (internal is None or signer != internal.org_id):
        raise SignatureError("a MAC is accepted only on an organisation's internal interfaces, from itself")
    key = trust.public_key(signer) if alg == ALG else None
    raw = base64.b64decode(sm.group("sig"))
    if len(raw) != (64 if key is not None else 32):
        raise SignatureError("signature has the wrong length")
    all_values = dict(values)
    all_values["content-digest"] = digest
    base = _signature_base(components, all_values, m.group("params"))
    if key is None:
        assert internal is not None
        if not hmac.compare_digest(raw, internal.mac(base)):
            raise SignatureError("signature does not verify")
        return Verified(signer=signer, nonce=params["nonce"], created=created, mac=True)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        key.verify(der, base, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureError("signature does not verify") from None
    return Verified(signer=signer, nonce=params["nonce"], created=created)


def sign_request(
    creds: OrgCredentials,
    method: str,
    path: str,
    query: str,
    body: bytes,
    recipient: str,
    internal: InternalKey | None = None,
) -> dict[str, str]:
    """Headers that sign a request from ``creds`` to ``recipient``. ``query`` excludes the '?'.
    ``internal``: with that MAC instead (a call of the organisation's own internal interface)."""
    digest = content_digest(body)
    values = {
        "@method": method.upper(),
        "@path": path,
        "@query": "?" + query,
        "content-digest": digest,
        RECIPIENT_HEADER: recipient,
    }
    headers = _sign(creds, REQUEST_COMPONENTS, values, internal)
    headers["content-digest"] = digest
    headers[RECIPIENT_HEADER] = recipient
    return headers


def verify_request(
    headers: Mapping[str, str],
    method: str,
    path: str,
    query: str,
    body: bytes,
    me: str,
    trust: TrustStore,
    now: float | None = None,
    internal: InternalKey | None = None,
) -> Verified:
    """Verify a request addressed to organisation ``me``; raises SignatureError.  ``internal``:
    ``me``'s own MAC key, accepted too (an internal interface)."""
    if not headers.get("signature") or not headers.get("signature-input"):
        raise SignatureError("message is not signed")
    if headers.get(RECIPIENT_HEADER) != me:
        raise SignatureError("request is addressed to another organisation")
    values = {
        "@method": method.upper(),
        "@path": path,
        "@query": "?" + query,
        RECIPIENT_HEADER: me,
    }
    return _verify(headers, REQUEST_COMPONENTS, values, body, trust, now, internal)


def sign_response(
    creds: OrgCredentials, status: int, body: bytes, request_nonce: str, internal: InternalKey | None = None
) -> dict[str, str]:
    """Headers that sign an answer to the request with ``request_nonce`` (with ``internal``: its
    MAC, for an answer to a request that came with one)."""
    digest = content_digest(body)
    values = {"@status": str(status), "content-digest": digest, REQUEST_NONCE_HEADER: request_nonce}
    headers = _sign(creds, RESPONSE_COMPONENTS, values, internal)
    headers["content-digest"] = digest
    headers[REQUEST_NONCE_HEADER] = request_nonce
    return headers


def verify_response(
    headers: Mapping[str, str],
    status: int,
    body: bytes,
    expected_signer: str,
    request_nonce: str,
    trust: TrustStore,
    now: float | None = None,
    internal: InternalKey | None = None,
) -> Verified:
    """Verify that an answer comes from ``expected_signer`` and answers our request.  ``internal``:
    our own MAC key, accepted too (an answer from one of our own internal interfaces)."""
    if headers.get(REQUEST_NONCE_HEADER) != request_nonce:
        raise SignatureError("answer is not bound to our request")
    values = {"@status": str(status), REQUEST_NONCE_HEADER: request_nonce}
    verified = _verify(headers, RESPONSE_COMPONENTS, values, body, trust, now, internal)
    if verified.signer != expected_signer:
        raise SignatureError("answer is signed by another organisation")
    return verified


NonceStore = Callable[[str, str, int], bool]
"""``remember(signer, nonce, created) -> bool``: False when the nonce was already seen."""


class NonceWindow:
    """The (signer, nonce) pairs seen within the validity window, each with its ``created``.

    Expired ones are forgotten from a queue in arrival order, a few at a time (``expire``): a
    window rebuilt whole once it was large cost every call the whole window.  A nonce that arrived
    out of order, with an older ``created``, goes when it reaches the front, at most a skew later.
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], int] = {}
        self._expiry: deque[tuple[int, tuple[str, str]]] = deque()

    def __contains__(self, key: object) -> bool:
        return key in self._seen

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._seen)

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, key: tuple[str, str], created: int) -> None:
        self._seen[key] = created
        self._expiry.append((created, key))

    def discard(self, key: tuple[str, str]) -> None:
        self._seen.pop(key, None)

    def expire(self, now: float) -> None:
        """Forget the nonces created before the window that ends at ``now``."""
        cutoff = int(now) - 2 * MAX_SKEW_SECONDS
        while self._expiry and self._expiry[0][0] < cutoff:
            created, key = self._expiry.popleft()
            if self._seen.get(key) == created:
                del self._seen[key]


class MemoryNonceStore:
    """In-process nonce memory for clients checking answers (servers keep theirs in their database)."""

    def __init__(self) -> None:
        self._seen = NonceWindow()

    def __call__(self, signer: str, nonce: str, created: int) -> bool:
        key = (signer, nonce)
        if key in self._seen:
            return False
        self._seen.expire(time.time())
        self._seen.add(key, created)
        return True
