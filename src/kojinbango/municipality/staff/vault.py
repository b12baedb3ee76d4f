"""The staff TOTP secrets at rest: sealed with AES-256-GCM under the municipality's own key.

The key is a file of the municipality's data directory (``secrets/{org}/staff-totp.key``, 0600),
never in the database, so a copy of the database alone gives no one the second factor.  Each sealed
secret is bound to its login (associated data), so sealed values cannot be swapped between accounts.
The Alembic migration that sealed the existing rows uses the same functions.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "v1:"
KEY_ATTRIBUTE = "staff_totp_key"  # how the key reaches the migrations (Alembic config attributes)


class VaultError(Exception):
    """A sealed secret cannot be opened (wrong key, altered value, or another account's value)."""


def _aad(login: str) -> bytes:
    return b"kojinbango-staff-totp:" + login.encode()


def _cipher(key: bytes) -> AESGCM:
    if len(key) != 32:
        raise VaultError("the staff TOTP key must be 32 bytes (AES-256)")
    return AESGCM(key)


def seal(key: bytes, login: str, secret: str) -> str:
    """``v1:`` + base64url(nonce ‖ ciphertext ‖ tag) of the base32 TOTP secret."""
    nonce = os.urandom(12)
    sealed = _cipher(key).encrypt(nonce, secret.encode(), _aad(login))
    return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()


def open_sealed(key: bytes, login: str, value: str) -> str:
    if not value.startswith(PREFIX):
        raise VaultError("this TOTP secret is not sealed")
    try:
        raw = base64.urlsafe_b64decode(value[len(PREFIX) :])
        return _cipher(key).decrypt(raw[:12], raw[12:], _aad(login)).decode()
    except (InvalidTag, ValueError) as exc:
        raise VaultError("the TOTP secret cannot be opened with this municipality's key") from exc
