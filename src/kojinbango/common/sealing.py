"""Answers sealed for the querier: JWE (RFC 7516), ECDH-ES key agreement on P-256 with A256GCM.

The provider's intermediate server seals the provided information to the querier's *encryption*
certificate (key usage keyAgreement, a key pair of its own beside the signing one), so the network
that relays and keeps the answer — and a joint intermediate server that relays it to its tenant —
hold only ciphertext; the querier alone opens it.  The seal sits inside the provider's signed
document, so the signature covers exactly what was sent and the querier can keep the document as
evidence.  Compact serialisation: any JOSE library with ECDH-ES and A256GCM opens it.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from kojinbango.common import jsoncodec

ALG = "ECDH-ES"
ENC = "A256GCM"


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


class Sealer:
    """Seals for recipients by their public keys (each key converted once)."""

    def __init__(self) -> None:
        self._keys: dict[bytes, ECKey] = {}

    def seal(self, data: Any, recipient: ec.EllipticCurvePublicKey, kid: str) -> str:
        """``data`` (JSON) as a compact JWE only the holder of ``recipient``'s private key opens."""
        raw = recipient.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        key = self._keys.get(raw)
        if key is None:
            key = self._keys[raw] = _jwk(recipient)
        plain = jsoncodec.encode(data)
        return jwe.encrypt_compact({"alg": ALG, "enc": ENC, "kid": kid, "cty": "json"}, plain, key)


class Opener:
    """Opens what was sealed for one private key."""

    def __init__(self, key: ec.EllipticCurvePrivateKey):
        self._key = _jwk(key)

    def open(self, token: str) -> Any:
        try:  # only the pair this module seals with: no algorithm chosen by the token
            plain = jwe.decrypt_compact(token, self._key, algorithms=[ALG, ENC]).plaintext
        except (JoseError, ValueError, TypeError) as exc:
            raise SealError(f"the sealed information cannot be opened with this key ({type(exc).__name__})") from None
        if plain is None:
            raise SealError("the sealed information is empty")
        try:
            return jsoncodec.decode(plain)
        except ValueError:
            raise SealError("the sealed information is not JSON") from None
