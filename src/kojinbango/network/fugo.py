"""機関別符号: each holder's pseudonym for a person, made from the internal id with a secret key.

``符号 = AES-256(key, internal id (8 bytes) || holder code (8 bytes))`` — one block of a keyed
permutation, written as 32 hex digits.  Every holder gets a different 符号 for the same person and no
one without the key can join two of them; the network decrypts a 符号 to find the person (and checks
that it was made for the organisation presenting it), so it keeps no table of 符号 at all.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

FUGO = re.compile(r"^[0-9A-F]{32}$")


class FugoError(Exception):
    """A 符号 that is malformed or was not made for the organisation presenting it."""


def holder_code(org_id: str) -> bytes:
    """The 8-byte code of a holder (機関コード) inside its 符号."""
    return hashlib.sha256(b"kojinbango-holder:" + org_id.encode()).digest()[:8]


class FugoCipher:
    def __init__(self, key: bytes):
        if len(key) != 32:
            raise ValueError("the 符号 key is 32 bytes")
        self._cipher = Cipher(algorithms.AES(key), modes.ECB())
        self._digest_key = hashlib.sha256(b"kojinbango-code-digest:" + key).digest()

    def code_digest(self, resident_code: str) -> str:
        """Keyed digest of a 住民票コード: finds the person's internal id without storing the code."""
        return hmac.new(self._digest_key, resident_code.encode(), hashlib.sha256).hexdigest()

    def make(self, person_id: int, holder: str) -> str:
        block = person_id.to_bytes(8, "big") + holder_code(holder)
        enc = self._cipher.encryptor()
        return (enc.update(block) + enc.finalize()).hex().upper()

    def open(self, fugo: str, holder: str) -> int:
        """The internal id behind ``fugo``; FugoError unless it was made for ``holder``."""
        if not isinstance(fugo, str) or not FUGO.match(fugo):
            raise FugoError("a 符号 is 32 hexadecimal digits")
        dec = self._cipher.decryptor()
        block = dec.update(bytes.fromhex(fugo)) + dec.finalize()
        if not hmac.compare_digest(block[8:], holder_code(holder)):
            raise FugoError("this 符号 was not issued to the organisation presenting it")
        return int.from_bytes(block[:8], "big")
