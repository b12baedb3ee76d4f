"""The chip of a 個人番号カード, modelled as a JSON document the holder keeps in a file.

The four applications of DOMAIN.md §6.1:

* 券面AP (``kenmen``): the face — 4情報, photo, 有効期限, and the number printed on the back;
* 公的個人認証AP (``jpki``): the 利用者証明用 and 署名用 key pairs, their certificates and PINs;
* 券面事項入力補助AP (``hojo``): 個人番号 and 4情報 as text, behind a 4-digit PIN;
* 住基AP (``juki``): the 住民票コード, behind a 4-digit PIN (counter work only).

Key pairs are generated here, "on the chip"; only public keys ever leave it (to the CA).  PINs are
kept as salted hashes with their retry counters; :mod:`kojinbango.card.reader` is the only code that
checks them before using a key.  A file is not a tamper-resistant chip: whoever copies the file has
the keys.  That limit is stated in the README, not hidden.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import secrets
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kojinbango.domain.cards import (
    AUTH_PIN_TRIES,
    SIGN_PIN_TRIES,
    validate_four_digit_pin,
    validate_sign_pin,
)

FORMAT = "kojinbango-card/1"
KEY_BITS = 2048
PIN_SLOTS = {
    "auth": ("利用者証明用電子証明書", AUTH_PIN_TRIES),
    "sign": ("署名用電子証明書", SIGN_PIN_TRIES),
    "juki": ("住民基本台帳用", AUTH_PIN_TRIES),
    "hojo": ("券面事項入力補助用", AUTH_PIN_TRIES),
}


class ChipError(Exception):
    """The card file is not a card, or an operation does not fit the card's state."""


def pin_verifier(pin: str) -> dict[str, str]:
    """What the chip keeps of a PIN: a random salt and SHA-256(salt || PIN)."""
    salt = secrets.token_bytes(16)
    return {
        "salt": base64.b64encode(salt).decode(),
        "hash": base64.b64encode(hashlib.sha256(salt + pin.encode()).digest()).decode(),
    }


def pin_matches(verifier: dict[str, str], pin: str) -> bool:
    salt = base64.b64decode(verifier["salt"])
    expected = base64.b64decode(verifier["hash"])
    return hmac.compare_digest(hashlib.sha256(salt + pin.encode()).digest(), expected)


def validate_pin(slot: str, pin: str) -> str:
    if slot == "sign":
        return validate_sign_pin(pin)
    return validate_four_digit_pin(pin, PIN_SLOTS[slot][0])


def pin_verifiers(
    auth_pin: str, sign_pin: str | None, juki_pin: str | None = None, hojo_pin: str | None = None
) -> dict[str, Any]:
    """Validated verifiers for the PINs set at once (the three 4-digit PINs may be identical)."""
    out: dict[str, Any] = {"auth": pin_verifier(validate_pin("auth", auth_pin))}
    out["juki"] = pin_verifier(validate_pin("juki", juki_pin or auth_pin))
    out["hojo"] = pin_verifier(validate_pin("hojo", hojo_pin or auth_pin))
    if sign_pin is not None:
        out["sign"] = pin_verifier(validate_pin("sign", sign_pin))
    return out


class Chip:
    """A card's chip as a dict (the card file's content), with the operations the card itself does."""

    def __init__(self, data: dict[str, Any]):
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ChipError("this file is not a kojinbango 個人番号カード (unknown format)")
        self.data = data

    # --- manufacture ---------------------------------------------------------------------
    @classmethod
    def manufacture(
        cls,
        card_serial: str,
        face: dict[str, Any],
        my_number: str,
        resident_code: str,
        with_signing: bool,
    ) -> Chip:
        """A new chip: face and AP data recorded, key pairs generated on the chip, no PINs yet."""
        jpki: dict[str, Any] = {"auth": _key_slot("auth")}
        jpki["sign"] = _key_slot("sign") if with_signing else None
        data = {
            "format": FORMAT,
            "card_serial": card_serial,
            "kenmen": {"face": face, "back": {"my_number": my_number}},
            "jpki": jpki,
            "hojo": {"my_number": my_number, "four": _four_of(face), "pin": _pin_slot("hojo")},
            "juki": {"resident_code": resident_code, "pin": _pin_slot("juki")},
        }
        return cls(data)

    @classmethod
    def loads(cls, text: str | bytes) -> Chip:
        try:
            return cls(json.loads(text))
        except (ValueError, TypeError):
            raise ChipError("this file is not a kojinbango 個人番号カード (not JSON)") from None

    def dumps(self) -> str:
        return json.dumps(self.data, ensure_ascii=False, indent=1)

    def copy(self) -> Chip:
        return Chip(copy.deepcopy(self.data))

    # --- reading what needs no PIN --------------------------------------------------------
    @property
    def card_serial(self) -> str:
        return str(self.data["card_serial"])

    @property
    def face(self) -> dict[str, Any]:
        return dict(self.data["kenmen"]["face"])

    @property
    def printed_number(self) -> str:
        """The 個人番号 printed on the card's back (券面の裏面): whoever holds the card reads it."""
        return str(self.data["kenmen"]["back"]["my_number"])

    @property
    def has_signing(self) -> bool:
        return self.data["jpki"].get("sign") is not None

    def public_key_pem(self, kind: str) -> str:
        slot = self._jpki(kind)
        key = _private_key(slot)
        return (
            key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def certificate_der(self, kind: str) -> bytes | None:
        slot = self._jpki(kind)
        return base64.b64decode(slot["certificate"]) if slot.get("certificate") else None

    def pin_state(self) -> dict[str, dict[str, Any]]:
        """Per PIN: whether it is set, the tries left and the maximum."""
        out = {}
        for name in PIN_SLOTS:
            slot = self._pin(name, required=False)
            if slot is None:
                continue
            out[name] = {
                "set": slot["verifier"] is not None,
                "tries_left": slot["tries_left"],
                "max": slot["max"],
            }
        return out

    # --- what the issuing terminal does (counter or card centre) ----------------------------
    def install_certificate(self, kind: str, der: bytes) -> None:
        self._jpki(kind)["certificate"] = base64.b64encode(der).decode()

    def set_pin_verifiers(self, verifiers: dict[str, Any]) -> None:
        """Write PIN verifiers (initial setting or a reset at the counter); counters go back to full."""
        for name, verifier in verifiers.items():
            slot = self._pin(name, required=name != "sign")
            if slot is None:
                continue
            slot["verifier"] = verifier
            slot["tries_left"] = slot["max"]

    def remove_signing(self) -> None:
        """The 署名用 key and certificate are erased (e.g. issued under 15, or declined)."""
        self.data["jpki"]["sign"] = None

    # --- internals ------------------------------------------------------------------------
    def _jpki(self, kind: str) -> dict[str, Any]:
        slot = self.data["jpki"].get(kind)
        if slot is None:
            raise ChipError(f"this card holds no {PIN_SLOTS[kind][0]} key")
        assert isinstance(slot, dict)
        return slot

    def _pin(self, name: str, required: bool = True) -> dict[str, Any] | None:
        holder = self.data["jpki"].get(name) if name in ("auth", "sign") else self.data[name]
        if holder is None:
            if required:
                raise ChipError(f"this card holds no {PIN_SLOTS[name][0]} application")
            return None
        pin = holder["pin"]
        assert isinstance(pin, dict)
        return pin

    def private_key(self, kind: str) -> rsa.RSAPrivateKey:
        """Only the reader calls this, after the PIN check."""
        return _private_key(self._jpki(kind))


def _pin_slot(name: str) -> dict[str, Any]:
    return {"verifier": None, "tries_left": PIN_SLOTS[name][1], "max": PIN_SLOTS[name][1]}


def _key_slot(kind: str) -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {"key": base64.b64encode(der).decode(), "certificate": None, "pin": _pin_slot(kind)}


def _private_key(slot: dict[str, Any]) -> rsa.RSAPrivateKey:
    key = serialization.load_der_private_key(base64.b64decode(slot["key"]), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ChipError("the chip's key is not an RSA key")
    return key


def _four_of(face: dict[str, Any]) -> dict[str, Any]:
    return {k: face[k] for k in ("name", "address", "birth_date", "sex")}
