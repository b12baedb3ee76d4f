"""個人番号カード rules that need no I/O: validity periods (DOMAIN.md §6.2) and PIN formats (§6.1).

Every rule here is a plain function so a changed rule is changed in one place.
"""

from __future__ import annotations

import datetime as dt
import re

ADULT_AGE = 18
"""Age from which a card is valid until the 10th birthday after issuance (20 before 2022-04-01)."""
SIGNING_MIN_AGE = 15
"""署名用電子証明書 is in principle not issued under this age (§6.2)."""

AUTH_PIN_TRIES = 3
"""利用者証明用, 住民基本台帳用 and 券面事項入力補助用 PINs lock after 3 wrong tries (§6.1)."""
SIGN_PIN_TRIES = 5
"""署名用電子証明書 PIN locks after 5 wrong tries (§6.1)."""

FIRST_ISSUE_FEE_YEN = 0
REISSUE_CARD_FEE_YEN = 800
REISSUE_CERTIFICATE_FEE_YEN = 200

_FOUR_DIGITS = re.compile(r"[0-9]{4}")
_SIGN_PIN = re.compile(r"[A-Z0-9]{6,16}")


class PinFormatError(ValueError):
    """A PIN does not have the format its application requires (the message never echoes it)."""


def age_on(birth_date: dt.date, day: dt.date) -> int:
    """満年齢 on ``day`` (counted by calendar birthdays)."""
    years = day.year - birth_date.year
    if (day.month, day.day) < (birth_date.month, birth_date.day):
        years -= 1
    return years


def birthday_in(birth_date: dt.date, year: int) -> dt.date:
    """The birthday in ``year``; 29 February falls on 28 February in a common year."""
    try:
        return birth_date.replace(year=year)
    except ValueError:
        return dt.date(year, 2, 28)


def nth_birthday_after(birth_date: dt.date, issued_on: dt.date, n: int) -> dt.date:
    """The ``n``-th birthday strictly after ``issued_on`` (発行日後の n 回目の誕生日)."""
    if n < 1:
        raise ValueError("n must be at least 1")
    first = birthday_in(birth_date, issued_on.year)
    if first <= issued_on:
        first = birthday_in(birth_date, issued_on.year + 1)
    return birthday_in(birth_date, first.year + n - 1)


def card_expiry(birth_date: dt.date, issued_on: dt.date) -> dt.date:
    """有効期限 of the card: the 10th birthday after issuance from age 18, else the 5th (§6.2)."""
    n = 10 if age_on(birth_date, issued_on) >= ADULT_AGE else 5
    return nth_birthday_after(birth_date, issued_on, n)


def certificate_expiry(birth_date: dt.date, issued_on: dt.date, card_expires_on: dt.date) -> dt.date:
    """電子証明書の有効期限: the 5th birthday after issuance, never later than the card (§6.2)."""
    return min(nth_birthday_after(birth_date, issued_on, 5), card_expires_on)


def may_hold_signing_certificate(birth_date: dt.date, issued_on: dt.date) -> bool:
    """署名用電子証明書 is not issued to a person under 15 (§6.2)."""
    return age_on(birth_date, issued_on) >= SIGNING_MIN_AGE


def validate_four_digit_pin(pin: str, label: str = "利用者証明用電子証明書") -> str:
    """A 4-digit PIN (利用者証明用, 住民基本台帳用, 券面事項入力補助用)."""
    if not isinstance(pin, str) or not _FOUR_DIGITS.fullmatch(pin):
        raise PinFormatError(f"the {label} PIN must be exactly 4 digits (0-9)")
    return pin


def validate_sign_pin(pin: str) -> str:
    """署名用電子証明書 PIN: 6-16 characters of A-Z and 0-9, with at least one letter and one digit."""
    if not isinstance(pin, str) or not _SIGN_PIN.fullmatch(pin):
        raise PinFormatError(
            "the 署名用電子証明書 PIN must be 6 to 16 characters, upper-case letters A-Z and digits 0-9 only"
        )
    if not any(c.isalpha() for c in pin) or not any(c.isdigit() for c in pin):
        raise PinFormatError("the 署名用電子証明書 PIN needs at least one letter and at least one digit")
    return pin
