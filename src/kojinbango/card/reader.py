"""The card reader: the only program that uses a chip's keys, and only after the PIN is right.

It enforces what the chip enforces (DOMAIN.md §6.1): a wrong PIN costs a try; at zero tries the PIN
is locked and even the right PIN is refused until the municipality resets it at the counter.  Every
counter change is written back to the card file before the answer is given, under a file lock, so
two readers on one file cannot both spend the same try.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from kojinbango.card.chip import PIN_SLOTS, Chip, ChipError, pin_matches


class CardError(Exception):
    """The reader refuses; ``reason`` is one of wrong_pin, pin_locked, pin_not_set, no_certificate,
    not_a_card."""

    def __init__(self, reason: str, message: str, tries_left: int | None = None):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.tries_left = tries_left


def write_card(path: Path, chip: Chip) -> None:
    """Write a card file atomically, readable by its holder only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(chip.dumps())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_card(path: Path) -> Chip:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CardError("not_a_card", f"no card file at {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CardError("not_a_card", f"cannot read the card file {path}: {type(exc).__name__}") from None
    try:
        return Chip.loads(text)
    except ChipError as exc:
        raise CardError("not_a_card", str(exc)) from None


class CardReader:
    """A reader with one card file inserted."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._keys: dict[tuple[str, str], rsa.RSAPrivateKey] = {}
        read_card(self.path)  # fail early on a file that is not a card

    @contextmanager
    def _locked(self) -> Iterator[None]:
        lock = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def chip(self) -> Chip:
        return read_card(self.path)

    def info(self) -> dict[str, Any]:
        """What anyone holding the card can see: serial, face (no number), PIN counters."""
        chip = self.chip()
        face = {k: v for k, v in chip.face.items() if k != "photo"}
        return {
            "card_serial": chip.card_serial,
            "face": face,
            "pins": chip.pin_state(),
            "certificates": {
                kind: chip.data["jpki"].get(kind) is not None and chip.certificate_der(kind) is not None
                for kind in ("auth", "sign")
            },
        }

    def auth_certificate(self) -> bytes:
        """The 利用者証明用電子証明書 is readable without a PIN (EF 000A)."""
        chip = self.chip()
        der = chip.certificate_der("auth")
        if der is None:
            raise CardError("no_certificate", "this card holds no 利用者証明用電子証明書 yet (not issued)")
        return der

    def sign_auth(self, pin: str, data: bytes) -> bytes:
        """Sign ``data`` with the 利用者証明用 key after checking the 4-digit PIN."""
        return self._sign("auth", pin, data)

    def signing_certificate(self, pin: str) -> bytes:
        """The 署名用電子証明書 needs its PIN even to be read: it carries the 4情報."""
        chip = self._check_pin("sign", pin)
        der = chip.certificate_der("sign")
        if der is None:
            raise CardError("no_certificate", "this card holds no 署名用電子証明書")
        return der

    def sign_with_signing_key(self, pin: str, data: bytes) -> tuple[bytes, bytes]:
        """(signature, 署名用電子証明書) over ``data`` after checking the 署名用 PIN."""
        chip = self._check_pin("sign", pin)
        der = chip.certificate_der("sign")
        if der is None:
            raise CardError("no_certificate", "this card holds no 署名用電子証明書")
        return self._key(chip, "sign").sign(data, padding.PKCS1v15(), hashes.SHA256()), der

    def read_number(self, pin: str) -> dict[str, Any]:
        """券面事項入力補助AP: the 個人番号 and 4情報 as text, after its 4-digit PIN."""
        chip = self._check_pin("hojo", pin)
        hojo = chip.data["hojo"]
        return {"my_number": hojo["my_number"], **hojo["four"]}

    # --- internals -------------------------------------------------------------------------
    def _sign(self, kind: str, pin: str, data: bytes) -> bytes:
        chip = self._check_pin(kind, pin)
        if chip.certificate_der(kind) is None:
            raise CardError("no_certificate", f"this card holds no {PIN_SLOTS[kind][0]} yet")
        return self._key(chip, kind).sign(data, padding.PKCS1v15(), hashes.SHA256())

    def _key(self, chip: Chip, kind: str) -> rsa.RSAPrivateKey:
        cache_key = (kind, chip.data["jpki"][kind]["key"][-32:])
        key = self._keys.get(cache_key)
        if key is None:
            key = chip.private_key(kind)
            self._keys[cache_key] = key
        return key

    def _check_pin(self, name: str, pin: str) -> Chip:
        label = PIN_SLOTS[name][0]
        with self._locked():
            chip = read_card(self.path)
            try:
                slot = chip._pin(name)
            except ChipError as exc:
                raise CardError("no_certificate", str(exc)) from None
            assert slot is not None
            if slot["verifier"] is None:
                raise CardError("pin_not_set", f"the {label} PIN has not been set (set it at the counter)")
            if slot["tries_left"] <= 0:
                raise CardError(
                    "pin_locked",
                    f"the {label} PIN is locked; have it reset at the municipality counter",
                    tries_left=0,
                )
            if not isinstance(pin, str) or not pin_matches(slot["verifier"], pin):
                slot["tries_left"] -= 1
                write_card(self.path, chip)
                left = slot["tries_left"]
                if left == 0:
                    raise CardError(
                        "pin_locked",
                        f"wrong {label} PIN; the PIN is now locked — have it reset at the municipality counter",
                        tries_left=0,
                    )
                raise CardError("wrong_pin", f"wrong {label} PIN: {left} tries left", tries_left=left)
            if slot["tries_left"] != slot["max"]:
                slot["tries_left"] = slot["max"]
                write_card(self.path, chip)
            return chip
