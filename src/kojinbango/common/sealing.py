"""Answers sealed for the querier: JWE (RFC 7516), ECDH-ES key agreement on P-256 with A256GCM.

The provider's intermediate server seals the provided information to the querier's *encryption*
certificate (key usage keyAgreement, a key pair of its own beside the signing one), so the network
that relays and keeps the answer — and a joint intermediate server that relays it to its tenant —
hold only ciphertext; the querier alone opens it.  The seal sits inside the provider's signed
document, so the signature covers exactly what was sent and the querier can keep the document as
evidence.  Compact serialisation: any JOSE library with ECDH-ES and A256GCM opens it.

Several answers to one querier in one batch share one key agreement (``Sealer.seal_batch``): a fresh
random AES-256 key is sealed to the querier as above — the key as an encrypted JWK (RFC 7517 §11,
``cty`` ``jwk+json``) — and each answer is its own JWE under that key (A256KW: a content key of its
own, wrapped; A256GCM).  Each answer carries the sealed key beside its own seal, so it still opens
alone, later, with the querier's private key and any JOSE library (open the key, then the answer).
The key agreement — an ephemeral key generated, ECDH, the KDF — was most of a seal's cost, once per
answer; it is now once per batch and querier, and a querier opens each batch's key once.

Both forms are sealed and opened here directly with ``cryptography`` (RFC 7516 §5.1–5.2; RFC 7518
§4.6 ECDH-ES with its Concat KDF, §4.4 A256KW, §5.3 A256GCM), only these forms and strictly:
joserfc's general path cost about 100 µs more per seal and per opening, on every exchange.  joserfc
remains the reference in the tests (each direction, both forms) and gives the keys' thumbprints.

A querier's encryption key can be replaced (``kojinbango exchange rotate-key``): the seals name the
key they were made for (``kid``: ``key_id``, the organisation and the key's RFC 7638 thumbprint), and
an ``Opener`` holds the current key and the retired ones, so answers sealed before the rotation —
stored as evidence, or sealed by a provider that has not yet read the new certificate — still open.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap
from joserfc.jwk import ECKey

from kojinbango.common import jsoncodec

ALG = "ECDH-ES"
ENC = "A256GCM"
BATCH_ALG = "A256KW"  # an answer sealed under its batch's key
KEY_TYPE = "jwk+json"  # the batch's key, sealed to the querier as an encrypted JWK
OPENED_KEYS = 4096  # batch keys a querier keeps opened (a batch's answers arrive together)
log = logging.getLogger(__name__)
RELOAD_SECONDS = 5.0  # an Opener that fails looks for new keys at most this often


class SealError(Exception):
    """A sealed answer cannot be opened with this key (sealed for someone else, or altered)."""


def _jwk(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> ECKey:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    else:
        pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return ECKey.import_key(pem)


def _thumbprint(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> str:
    """RFC 7638 thumbprint of ``key``'s public key (joserfc's: once per key, not per seal)."""
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    return _jwk(public).thumbprint()


def key_id(org_id: str, key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> str:
    """The ``kid`` of seals made for ``key``: ``{org_id}:{RFC 7638 thumbprint of its public key}``."""
    return f"{org_id}:{_thumbprint(key)}"


_UNCOMPRESSED = serialization.PublicFormat.UncompressedPoint


class Sealer:
    """Seals for recipients by their P-256 public keys."""

    def seal(self, data: Any, recipient: ec.EllipticCurvePublicKey, kid: str) -> str:
        """``data`` (JSON) as a compact JWE only the holder of ``recipient``'s private key opens."""
        return self.seal_bytes(jsoncodec.encode(data), recipient, kid, "json")

    def seal_batch(
        self, items: Sequence[Any], recipient: ec.EllipticCurvePublicKey, kid: str
    ) -> tuple[str, list[str]]:
        """``items`` for one recipient with one key agreement: (the batch's key sealed to
        ``recipient``, each item sealed under that key).  Open each with ``Opener.open(token,
        key_token)``."""
        key = secrets.token_bytes(32)  # the batch's key: random, this batch only
        jwk = {"kty": "oct", "k": _b64url(key).decode("ascii")}
        key_token = self.seal_bytes(jsoncodec.encode(jwk), recipient, kid, KEY_TYPE)
        return key_token, [seal_under(key, jsoncodec.encode(item)) for item in items]

    def seal_bytes(self, plain: bytes, recipient: ec.EllipticCurvePublicKey, kid: str, cty: str) -> str:
        """``plain`` (of content type ``cty``) sealed to ``recipient`` alone: ECDH-ES, A256GCM.

        An ephemeral key of its own, agreed with ``recipient`` (ECDH); the content key derived from
        that (RFC 7518 §4.6.2); the ephemeral public key in the protected header (``epk``), which is
        the additional data; no encrypted key (direct key agreement)."""
        if not isinstance(getattr(recipient, "curve", None), ec.SECP256R1):
            raise ValueError("a seal is made for a P-256 public key only")
        ephemeral = ec.generate_private_key(ec.SECP256R1())
        cek = _content_key(ephemeral.exchange(ec.ECDH(), recipient))
        # 0x04 || x || y, each 32 bytes big-endian: the JWK's coordinates as they are (RFC 7518 §6.2.1)
        point = ephemeral.public_key().public_bytes(serialization.Encoding.X962, _UNCOMPRESSED)
        x, y = _b64url(point[1:33]).decode(), _b64url(point[33:]).decode()
        epk = {"kty": "EC", "crv": "P-256", "x": x, "y": y}
        head = _b64url(jsoncodec.encode({"alg": ALG, "enc": ENC, "kid": kid, "cty": cty, "epk": epk}))
        iv = os.urandom(12)
        sealed = AESGCM(cek).encrypt(iv, plain, head)
        parts = (head, b"", _b64url(iv), _b64url(sealed[:-16]), _b64url(sealed[-16:]))
        return b".".join(parts).decode("ascii")


class _Sealed(NamedTuple):
    """A compact JWE sealed to a key (ECDH-ES, A256GCM), read and checked, not yet opened."""

    header: dict[str, Any]
    aad: bytes  # the protected header as sent
    epk: ec.EllipticCurvePublicKey
    iv: bytes
    body: bytes  # the ciphertext and the tag


class Opener:
    """Opens what was sealed for a private key: the current one, or one of the ``retired`` keys it
    replaced (newest first).

    ``reload``: the organisation's keys as they are now (its topology read again).  A seal that none
    of the keys opens is tried again with them, once they differ — a provider that restarted after a
    rotation seals to the new key before this service has restarted — at most every
    ``RELOAD_SECONDS``."""

    def __init__(
        self,
        key: ec.EllipticCurvePrivateKey,
        *retired: ec.EllipticCurvePrivateKey,
        reload: Callable[[], Sequence[ec.EllipticCurvePrivateKey]] | None = None,
    ):
        self._set_keys([key, *retired])
        self._reload = reload
        self._reloaded_at = float("-inf")
        self._reload_lock = threading.Lock()
        # each batch's key opened once (a batch's answers arrive together); a failure is not kept
        self._batch_key = functools.lru_cache(maxsize=OPENED_KEYS)(self._open_batch_key)

    def _set_keys(self, keys: list[ec.EllipticCurvePrivateKey]) -> None:
        self._keys = keys
        self._by_thumbprint = {_thumbprint(k): k for k in keys}

    def _reloaded(self) -> bool:
        """Whether the keys are new since the last look (a look at most every ``RELOAD_SECONDS``)."""
        if self._reload is None:
            return False
        with self._reload_lock:
            if time.monotonic() - self._reloaded_at < RELOAD_SECONDS:
                return False
            self._reloaded_at = time.monotonic()
            try:
                keys = list(self._reload())
                thumbprints = [_thumbprint(k) for k in keys]
            except Exception as exc:  # a topology being edited, a key file not copied yet: next time
                log.warning("the organisation's encryption keys could not be read again: %s", exc)
                return False
            if not keys or thumbprints == list(self._by_thumbprint):
                return False
            self._set_keys(keys)
            return True

    def _candidates(self, header: dict[str, Any]) -> list[ec.EllipticCurvePrivateKey]:
        """The key a seal names (its ``kid``: ``key_id``), or — a seal that names none of them, such
        as one made before keys were named — each key in turn, the current one first."""
        if len(self._keys) == 1:  # one key (none retired yet): nothing to choose
            return self._keys
        kid = header.get("kid")
        named = self._by_thumbprint.get(kid.rsplit(":", 1)[-1]) if isinstance(kid, str) else None
        return [named] if named is not None else self._keys

    def _decrypt_any(self, token: str) -> tuple[bytes, dict[str, Any]]:
        """``token`` opened with the first of its candidate keys that opens it — and, should none,
        with the keys as they are now, if they changed (``reload``).  Returns (the plaintext, the
        protected header)."""
        sealed = _read_sealed(token)  # malformed: no key opens it, so no reason to read keys again
        try:
            return self._decrypt_with_candidates(sealed), sealed.header
        except SealError:
            if not self._reloaded():
                raise
        return self._decrypt_with_candidates(sealed), sealed.header

    def _decrypt_with_candidates(self, sealed: _Sealed) -> bytes:
        failure: SealError | None = None
        for key in self._candidates(sealed.header):
            try:
                return self._decrypt(sealed, key)
            except SealError as exc:
                failure = failure or exc
        assert failure is not None  # there is always a current key
        raise failure

    def open(self, token: str, key_token: str | None = None) -> Any:
        """What ``token`` seals: alone (ECDH-ES), or — with ``key_token``, its batch's sealed key —
        under that key (A256KW).  Only these two forms: no algorithm chosen by the token."""
        if key_token is None:
            return _json(self._decrypt_any(token)[0])
        if not isinstance(key_token, str):
            raise SealError("the batch's sealed key is not a JWE")
        return _json(open_under(self._batch_key(key_token), token))

    def _open_batch_key(self, key_token: str) -> bytes:
        plain, header = self._decrypt_any(key_token)
        if header.get("cty") != KEY_TYPE:
            raise SealError(f"the batch's sealed key is not a sealed key (cty {KEY_TYPE} expected)")
        jwk = _json(plain)
        if not isinstance(jwk, dict) or jwk.get("kty") != "oct" or not isinstance(jwk.get("k"), str):
            raise SealError("the batch's sealed key is not a symmetric key (JWK kty oct)")
        try:
            key = _unb64url(jwk["k"])
        except ValueError:
            raise SealError("the batch's sealed key cannot be read") from None
        if len(key) != 32:
            raise SealError("the batch's sealed key is not an AES-256 key")
        return key

    @staticmethod
    def _decrypt(sealed: _Sealed, key: ec.EllipticCurvePrivateKey) -> bytes:
        try:
            cek = _content_key(key.exchange(ec.ECDH(), sealed.epk))
            return AESGCM(cek).decrypt(sealed.iv, sealed.body, sealed.aad)
        except (InvalidTag, ValueError):  # ValueError: a key not on P-256
            raise SealError(
                "the sealed information cannot be opened with this key (altered, or another key)"
            ) from None


# --- compact JWE parts; ECDH-ES's content key -------------------------------------------------------
_B64URL_TO_STD = bytes.maketrans(b"-_", b"+/")
_B64URL_PART = re.compile(r"[A-Za-z0-9_-]*")


def _b64url(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def _unb64url(part: str) -> bytes:
    """base64url without padding (RFC 7515 §2), strictly: any other character is refused — the
    standard alphabet's ``+`` and ``/`` too, which the decoding below would otherwise take."""
    if len(part) % 4 == 1 or not _B64URL_PART.fullmatch(part):
        raise ValueError("not base64url")
    padded = part.encode().translate(_B64URL_TO_STD) + b"=" * (-len(part) % 4)
    return binascii.a2b_base64(padded, strict_mode=True)


def _length_prefixed(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


# Concat KDF OtherInfo (RFC 7518 §4.6.2): AlgorithmID — for direct key agreement, the ``enc`` —,
# PartyUInfo and PartyVInfo (empty: no apu, apv), SuppPubInfo (the key's length in bits)
_KDF_OTHER_INFO = (
    _length_prefixed(ENC.encode()) + _length_prefixed(b"") + _length_prefixed(b"") + (256).to_bytes(4, "big")
)


def _content_key(shared: bytes) -> bytes:
    """The A256GCM content key ECDH-ES derives from the ECDH shared secret."""
    return ConcatKDFHash(hashes.SHA256(), 32, _KDF_OTHER_INFO).derive(shared)


# header parameters that would change how a seal is read: refused, not ignored
_REFUSED = ("zip", "crit", "apu", "apv")


def _compact(token: str) -> tuple[str, dict[str, Any], bytes, bytes, bytes, bytes]:
    """A compact JWE's five parts, decoded: (the protected header as sent, the header, the encrypted
    key, the IV, the ciphertext, the tag) — what either form of seal is first read as."""
    if not isinstance(token, str) or token.count(".") != 4:
        raise SealError("the sealed information is not a compact JWE")
    head, *parts = token.split(".")
    try:
        header = jsoncodec.decode(_unb64url(head))
        wrapped, nonce, body, mac = (_unb64url(p) for p in parts)
    except ValueError:
        raise SealError("the sealed information is not a compact JWE") from None
    if not isinstance(header, dict):
        raise SealError("the sealed information is not a compact JWE (its header is not an object)")
    return head, header, wrapped, nonce, body, mac


def _read_sealed(token: str) -> _Sealed:
    """``token`` read as a compact JWE sealed to a key: ECDH-ES on P-256 and A256GCM, without
    compression, critical extensions or party information.  Nothing the token names beyond that is
    followed."""
    head, header, wrapped, nonce, body, mac = _compact(token)
    if header.get("alg") != ALG or header.get("enc") != ENC:
        raise SealError(f"the sealed information is not sealed to a key ({ALG}, {ENC})")
    if any(name in header for name in _REFUSED):
        raise SealError(
            "the sealed information's header asks for compression, extensions or party information"
        )
    if wrapped:
        raise SealError(f"the sealed information carries an encrypted key ({ALG} agrees the key directly)")
    if len(nonce) != 12 or len(mac) != 16:
        raise SealError("the sealed information is malformed (IV or tag of the wrong length)")
    return _Sealed(header, head.encode("ascii"), _ephemeral_key(header.get("epk")), nonce, body + mac)


def _ephemeral_key(epk: Any) -> ec.EllipticCurvePublicKey:
    """The sender's ephemeral public key (``epk``): a P-256 JWK whose point is on the curve."""
    if not isinstance(epk, dict) or epk.get("kty") != "EC" or epk.get("crv") != "P-256":
        raise SealError("the sealed information's ephemeral key (epk) is not a P-256 key")
    x, y = epk.get("x"), epk.get("y")
    try:
        if not isinstance(x, str) or not isinstance(y, str):
            raise ValueError("no coordinates")
        xb, yb = _unb64url(x), _unb64url(y)
        if len(xb) != 32 or len(yb) != 32:  # full length, leading zeros kept (RFC 7518 §6.2.1.2)
            raise ValueError("coordinates of the wrong length")
        # from_encoded_point refuses a point not on the curve (an invalid-curve attack)
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + xb + yb)
    except ValueError:
        raise SealError("the sealed information's ephemeral key (epk) is not a point on P-256") from None


# --- one answer under its batch's key: compact JWE, A256KW and A256GCM ------------------------------
# the protected header every answer under a batch's key carries, encoded once
_BATCH_HEADER = _b64url(jsoncodec.encode({"alg": BATCH_ALG, "enc": ENC, "cty": "json"}))


def seal_under(key: bytes, plain: bytes) -> str:
    """``plain`` sealed under a batch's AES-256 ``key``: a content key of its own (random), wrapped
    with ``key`` (A256KW); the content encrypted with it (A256GCM), the protected header as the
    additional data."""
    cek = os.urandom(32)
    iv = os.urandom(12)
    sealed = AESGCM(cek).encrypt(iv, plain, _BATCH_HEADER)
    parts = (
        _BATCH_HEADER, _b64url(aes_key_wrap(key, cek)), _b64url(iv), _b64url(sealed[:-16]), _b64url(sealed[-16:])
    )  # fmt: skip
    return b".".join(parts).decode("ascii")


def open_under(key: bytes, token: str) -> bytes:
    """What ``seal_under`` (or any JOSE library, with A256KW and A256GCM) sealed under ``key``.
    Only that form: a header naming another algorithm, compression or critical extensions is
    refused, whatever the key would do with it."""
    head, header, cek_wrapped, nonce, body, mac = _compact(token)
    if header.get("alg") != BATCH_ALG or header.get("enc") != ENC or "zip" in header or "crit" in header:
        raise SealError(f"the sealed information is not sealed under a batch's key ({BATCH_ALG}, {ENC})")
    if len(cek_wrapped) != 40 or len(nonce) != 12 or len(mac) != 16:
        raise SealError("the sealed information is malformed (key, IV or tag of the wrong length)")
    try:
        cek = aes_key_unwrap(key, cek_wrapped)
        return AESGCM(cek).decrypt(nonce, body + mac, head.encode("ascii"))
    except (InvalidUnwrap, InvalidTag, ValueError):
        raise SealError(
            "the sealed information cannot be opened with this key (altered, or another key)"
        ) from None


def _json(plain: bytes) -> Any:
    try:
        return jsoncodec.decode(plain)
    except ValueError:
        raise SealError("the sealed information is not JSON") from None
