"""Identifiers and their check digits (検査用数字).

Sources are in /work/shared/DOMAIN.md §1. Every validator normalises first (NFKC, surrounding
whitespace) and returns the normalised ASCII string. Errors never carry the value: identifiers must
not appear in clear in logs, and an exception message is the most common way they leak. Messages
spell lengths out in words so that they contain no digit characters at all, which makes "no digits
in an IdentifierError message" a property that is trivial to audit.
"""

from __future__ import annotations

import functools
import unicodedata
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "ATENA_CHECK_FOR_REMAINDER_ONE",
    "ATENA_NUMBER",
    "CORPORATE_NUMBER",
    "IdentifierError",
    "LG_CODE",
    "MY_NUMBER",
    "RESIDENT_CODE",
    "atena_check_digit",
    "corporate_number_check_digit",
    "is_valid_corporate_number",
    "is_valid_lg_code",
    "is_valid_my_number",
    "is_valid_resident_code",
    "lg_code_check_digit",
    "make_atena_number",
    "mask_my_number",
    "mask_resident_code",
    "my_number_check_digit",
    "my_number_check_digits_np",
    "normalize_digits",
    "resident_code_check_digit",
    "resident_code_check_digits_np",
    "validate_atena_number",
    "validate_corporate_number",
    "validate_lg_code",
    "validate_my_number",
    "validate_resident_code",
]

Reason = Literal["empty", "length", "non_digit", "check_digit"]

MY_NUMBER: Final = "個人番号"
RESIDENT_CODE: Final = "住民票コード"
CORPORATE_NUMBER: Final = "法人番号"
LG_CODE: Final = "地方公共団体コード"
ATENA_NUMBER: Final = "宛名番号"

_ENGLISH_NAMES: Final = {
    MY_NUMBER: "Individual Number (My Number)",
    RESIDENT_CODE: "resident record code",
    CORPORATE_NUMBER: "Corporate Number",
    LG_CODE: "local government code",
    ATENA_NUMBER: "addressee number",
}

# Lengths are spelled out so that messages contain no digit characters at all.
_EN_WORDS: Final = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen", "twenty",
)  # fmt: skip
_JA_WORDS: Final = (
    "零", "一", "二", "三", "四", "五", "六", "七", "八", "九", "十",
    "十一", "十二", "十三", "十四", "十五", "十六", "十七", "十八", "十九", "二十",
)  # fmt: skip


def _en(n: int) -> str:
    return _EN_WORDS[n] if 0 <= n <= 20 else "more than twenty"


def _ja(n: int) -> str:
    return _JA_WORDS[n] if 0 <= n <= 20 else "二十超"


class IdentifierError(ValueError):
    """An identifier failed validation.

    ``kind`` names the identifier (e.g. "個人番号"), ``reason`` is one of "empty", "length",
    "non_digit", "check_digit". The message names the kind and the problem and never contains the
    value, any part of it, or any digit character.
    """

    def __init__(
        self,
        kind: str,
        reason: Reason,
        *,
        expected_length: int | None = None,
        actual_length: int | None = None,
    ) -> None:
        self.kind = kind
        self.reason: Reason = reason
        self.expected_length = expected_length
        self.actual_length = actual_length
        super().__init__(self._message())

    def _message(self) -> str:
        label = f"{self.kind} ({_ENGLISH_NAMES.get(self.kind, 'identifier')})"
        if self.reason == "empty":
            return f"{label}: value is empty / 値が入力されていません"
        if self.reason == "non_digit":
            return f"{label}: contains a character that is not a digit / 数字以外の文字が含まれています"
        if self.reason == "length":
            exp, act = self.expected_length or 0, self.actual_length or 0
            return (
                f"{label}: expected {_en(exp)} digits, got {_en(act)} / "
                f"桁数が正しくありません（{_ja(exp)}桁のところ{_ja(act)}桁）"
            )
        return f"{label}: check digit does not match / 検査用数字が一致しません"

    def __reduce__(self) -> tuple[object, ...]:
        # Exceptions pickle via self.args (the message); rebuild from the fields instead.
        return (
            _rebuild_identifier_error,
            (self.kind, self.reason, self.expected_length, self.actual_length),
        )


def _rebuild_identifier_error(
    kind: str, reason: Reason, expected: int | None, actual: int | None
) -> IdentifierError:
    return IdentifierError(kind, reason, expected_length=expected, actual_length=actual)


def normalize_digits(value: str) -> str:
    """NFKC (full-width digits → ASCII) and strip surrounding whitespace, including U+3000.

    Internal characters are kept: "1234 5678 9018" stays invalid rather than being guessed at.
    """
    return unicodedata.normalize("NFKC", value).strip()


def _digits(value: str, kind: str, length: int | None) -> str:
    """Normalise and check shape; ``length=None`` accepts any non-empty digit string."""
    if not isinstance(value, str):
        # An int would silently lose leading zeros; refuse it without echoing it.
        raise TypeError(f"{kind}: expected str, got {type(value).__name__}")
    v = normalize_digits(value)
    if not v:
        raise IdentifierError(kind, "empty")
    # str.isdigit() alone accepts other scripts' digits (e.g. Arabic-Indic), which NFKC keeps.
    if not (v.isascii() and v.isdigit()):
        raise IdentifierError(kind, "non_digit")
    if length is not None and len(v) != length:
        raise IdentifierError(kind, "length", expected_length=length, actual_length=len(v))
    return v


def _mod11(digits: str, weights: tuple[int, ...]) -> int:
    """11 − (Σ mod 11), with remainders 0 and 1 both giving 0 (the 個人番号 statute's rule)."""
    r = sum(w * (ord(c) - 48) for w, c in zip(weights, digits, strict=True)) % 11
    return 0 if r <= 1 else 11 - r


# ---------------------------------------------------------------------------------------------
# 個人番号 — 総務省令第85号 第5条 (DOMAIN.md §1.1)

_MY_NUMBER_WEIGHTS: Final = (6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


def my_number_check_digit(base11: str) -> int:
    """Check digit of an 11-digit 個人番号 base (省令第5条).

    Weights 6,5,4,3,2,7,6,5,4,3,2 left to right; check = 11 − (Σ mod 11), remainder ≤ 1 → 0.
    """
    return _mod11(_digits(base11, MY_NUMBER, 11), _MY_NUMBER_WEIGHTS)


def validate_my_number(value: str) -> str:
    """Return the normalised 12-digit 個人番号 or raise IdentifierError."""
    v = _digits(value, MY_NUMBER, 12)
    if _mod11(v[:11], _MY_NUMBER_WEIGHTS) != ord(v[11]) - 48:
        raise IdentifierError(MY_NUMBER, "check_digit")
    return v


def is_valid_my_number(value: str) -> bool:
    try:
        validate_my_number(value)
    except (IdentifierError, TypeError):
        return False
    return True


# ---------------------------------------------------------------------------------------------
# 住民票コード (DOMAIN.md §1.3)

_RESIDENT_CODE_WEIGHTS: Final = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


def resident_code_check_digit(base10: str) -> int:
    """Check digit (検査数字) of a 10-digit 住民票コード base.

    UNSOURCED: the formula is published in 平成14年総務省告示第436号, which was not available
    (DOMAIN.md §1.3, VERIFY). This implements the believed scheme — the 個人番号 mod-11 rule on
    10 digits, weights 5,4,3,2,7,6,5,4,3,2 left to right, remainder ≤ 1 → 0. It is the single place
    to replace once the 告示 is checked; ``resident_code_check_digits_np`` must follow it.
    """
    return _mod11(_digits(base10, RESIDENT_CODE, 10), _RESIDENT_CODE_WEIGHTS)


def validate_resident_code(value: str) -> str:
    """Return the normalised 11-digit 住民票コード or raise IdentifierError."""
    v = _digits(value, RESIDENT_CODE, 11)
    if resident_code_check_digit(v[:10]) != ord(v[10]) - 48:
        raise IdentifierError(RESIDENT_CODE, "check_digit")
    return v


def is_valid_resident_code(value: str) -> bool:
    try:
        validate_resident_code(value)
    except (IdentifierError, TypeError):
        return False
    return True


# ---------------------------------------------------------------------------------------------
# 法人番号 — NTA formula (DOMAIN.md §1.2). The check digit is the FIRST digit.


def corporate_number_check_digit(base12: str) -> int:
    """Check digit of a 12-digit 法人番号 base: 9 − (Σ mod 9), weights 1,2,1,2… from the right.

    Always 1–9. Known weakness of the scheme: 0↔9 substitutions are undetectable.
    """
    b = _digits(base12, CORPORATE_NUMBER, 12)
    s = sum((ord(c) - 48) * (2 if i % 2 else 1) for i, c in enumerate(reversed(b)))
    return 9 - s % 9


def validate_corporate_number(value: str) -> str:
    """Return the normalised 13-digit 法人番号 or raise IdentifierError."""
    v = _digits(value, CORPORATE_NUMBER, 13)
    if corporate_number_check_digit(v[1:]) != ord(v[0]) - 48:
        raise IdentifierError(CORPORATE_NUMBER, "check_digit")
    return v


def is_valid_corporate_number(value: str) -> bool:
    try:
        validate_corporate_number(value)
    except (IdentifierError, TypeError):
        return False
    return True


# ---------------------------------------------------------------------------------------------
# 全国地方公共団体コード (DOMAIN.md §1.4)

_LG_WEIGHTS: Final = (6, 5, 4, 3, 2)


def lg_code_check_digit(base5: str) -> int:
    """Check digit of a 5-digit 地方公共団体コード base: (11 − Σ mod 11) mod 10, weights 6,5,4,3,2.

    Example: 13101 (千代田区) → 6, i.e. 131016.
    """
    b = _digits(base5, LG_CODE, 5)
    s = sum(w * (ord(c) - 48) for w, c in zip(_LG_WEIGHTS, b, strict=True))
    return (11 - s % 11) % 10


def validate_lg_code(value: str) -> str:
    """Return the normalised 6-digit 地方公共団体コード or raise IdentifierError.

    Codes are strings: 北海道 codes start with 0 (札幌市 011002), which integer storage loses.
    """
    v = _digits(value, LG_CODE, 6)
    if lg_code_check_digit(v[:5]) != ord(v[5]) - 48:
        raise IdentifierError(LG_CODE, "check_digit")
    return v


def is_valid_lg_code(value: str) -> bool:
    try:
        validate_lg_code(value)
    except (IdentifierError, TypeError):
        return False
    return True


# ---------------------------------------------------------------------------------------------
# 宛名番号・世帯番号 — standard spec 1.1.13, Modulus 11 weights 2–7 (DOMAIN.md §1.4)

ATENA_CHECK_FOR_REMAINDER_ONE: Final = 0
"""The spec gives check = 11 − (Σ mod 11) with remainder 0 → 0 but is silent on remainder 1
(11 − 1 = 10 is not a digit). Decision: remainder 1 → 0, the same rule the 個人番号 statute uses,
so every serial gets a number (skipping serials would complicate allocation for no real gain)."""


def atena_check_digit(serial: str) -> int:
    """M11W2-7 check digit of a 宛名番号/世帯番号 serial (any length).

    Weights 2,3,4,5,6,7,2,3,… from the rightmost digit; check = 11 − (Σ mod 11); remainder 0 → 0;
    remainder 1 → ``ATENA_CHECK_FOR_REMAINDER_ONE``.
    """
    s_digits = _digits(serial, ATENA_NUMBER, None)
    s = sum((ord(c) - 48) * (2 + i % 6) for i, c in enumerate(reversed(s_digits)))
    r = s % 11
    if r == 0:
        return 0
    if r == 1:
        return ATENA_CHECK_FOR_REMAINDER_ONE
    return 11 - r


def make_atena_number(serial: int, width: int = 10) -> str:
    """Serial zero-padded to ``width`` digits, followed by its check digit (``width`` + 1 digits)."""
    if width < 1:
        raise ValueError("width must be at least 1")
    if serial < 0 or serial >= 10**width:
        # Not echoing the serial: 宛名番号 is an internal identifier too.
        raise ValueError(f"{ATENA_NUMBER}: serial must be in [0, 10**{width})")
    base = f"{serial:0{width}d}"
    return base + str(atena_check_digit(base))


def validate_atena_number(value: str, *, width: int | None = None) -> str:
    """Return the normalised 宛名番号 (serial + check digit) or raise IdentifierError.

    With ``width`` (the serial width used by ``make_atena_number``) the total length must be
    ``width + 1``; without it any length of at least two digits is accepted.
    """
    v = _digits(value, ATENA_NUMBER, None if width is None else width + 1)
    if len(v) < 2:
        raise IdentifierError(ATENA_NUMBER, "length", expected_length=2, actual_length=len(v))
    if atena_check_digit(v[:-1]) != ord(v[-1]) - 48:
        raise IdentifierError(ATENA_NUMBER, "check_digit")
    return v


# ---------------------------------------------------------------------------------------------
# Masking for display and logs


def _mask(value: str, length: int) -> str:
    v = normalize_digits(value)
    # Only a well-formed value shows its last four; for anything else four of a few characters
    # could be most of it, so everything is masked.
    if len(v) == length and v.isascii() and v.isdigit():
        return "*" * (length - 4) + v[-4:]
    return "*" * len(v)


def mask_my_number(value: str) -> str:
    """Mask for display: "123456789018" → "********9018" (only the last four digits visible)."""
    return _mask(value, 12)


def mask_resident_code(value: str) -> str:
    """Mask for display: "12345678901" → "*******8901" (only the last four digits visible)."""
    return _mask(value, 11)


# ---------------------------------------------------------------------------------------------
# Vectorised check digits for the national batch numbering path.
#
# The weighted digit sum is additive over digit groups, so a base splits at 10**6 into a low part
# (the last six digits: weights 7,6,5,4,3,2 for both identifiers) and a high part (the leading five
# digits of a 個人番号, weights 6,5,4,3,2; the leading four of a 住民票コード, weights 5,4,3,2).
# Each part's weighted sum mod 11 comes from one table (10**6 and 10**5 / 10**4 uint8 entries,
# built from the scalar weight tuples above on first use), and the sum of the two (≤ 20) maps to
# the check digit through a third, tiny table: one unsigned constant division plus three gathers
# per element. Unsigned, because numpy's uint64 floor_divide by a scalar uses libdivide.
# kojinbango.jlis.numbering's compiled batch kernel applies the very same tables
# (``_my_number_check_tables`` / ``_resident_code_check_tables``), so this stays the one place.

_SPLIT: Final = 10**6
_LOW_DIGITS: Final = 6


@functools.cache
def _weighted_sum_table(weights: tuple[int, ...]) -> npt.NDArray[np.uint8]:
    """``T[x] = Σ weights[k] * digit_k(x) mod 11`` for ``x`` < 10**len(weights), digits left to right."""
    x = np.arange(10 ** len(weights), dtype=np.int64)
    s = np.zeros_like(x)
    for w in reversed(weights):
        s += w * (x % 10)
        x //= 10
    return (s % 11).astype(np.uint8)


# Sum of the two part remainders (each ≤ 10) → check digit; remainder ≤ 1 → 0.
_CHECK_OF_SUM: Final = np.array([0 if s % 11 <= 1 else 11 - s % 11 for s in range(21)], dtype=np.int64)


def _as_bases(bases: npt.ArrayLike, upper: int) -> npt.NDArray[np.int64]:
    b = np.asarray(bases)
    if b.dtype.kind not in "iu":
        raise TypeError("bases must be an integer array")
    b = b.astype(np.int64, copy=False)
    if b.size and (int(b.min()) < 0 or int(b.max()) >= upper):
        raise ValueError(f"bases must lie in [0, {upper})")
    return b


def _check_tables(
    weights: tuple[int, ...],
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """``(low, high, check_of_sum)`` with ``check = check_of_sum[low[b % 10**6] + high[b // 10**6]]``."""
    return (
        _weighted_sum_table(weights[-_LOW_DIGITS:]),
        _weighted_sum_table(weights[:-_LOW_DIGITS]),
        _CHECK_OF_SUM,
    )


def _my_number_check_tables() -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """The 個人番号 tables of ``my_number_check_digits_np`` (see ``_check_tables``), for the
    compiled batch kernel of ``kojinbango.jlis.numbering``, which must use exactly these."""
    return _check_tables(_MY_NUMBER_WEIGHTS)


def _resident_code_check_tables() -> tuple[
    npt.NDArray[np.uint8], npt.NDArray[np.uint8], npt.NDArray[np.int64]
]:
    """The 住民票コード tables of ``resident_code_check_digits_np`` (see ``_check_tables``)."""
    return _check_tables(_RESIDENT_CODE_WEIGHTS)


def _split_check_digits(b: npt.NDArray[np.int64], weights: tuple[int, ...]) -> npt.NDArray[np.int64]:
    low, high, check_of_sum = _check_tables(weights)
    u = b.view(np.uint64)  # validated non-negative
    hi = u // np.uint64(_SPLIT)
    lo = u - hi * np.uint64(_SPLIT)
    # both parts are small, so reinterpreting them as intp indices is free (no cast pass)
    s = np.take(low, lo.view(np.int64))
    s += np.take(high, hi.view(np.int64))
    return np.take(check_of_sum, s)


def my_number_check_digits_np(bases: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Vectorised ``my_number_check_digit`` over int64 11-digit bases (0 ≤ b < 10**11).

    Returns int64 check digits with the input's shape. No Python-level loop over elements.
    """
    return _split_check_digits(_as_bases(bases, 10**11), _MY_NUMBER_WEIGHTS)


def resident_code_check_digits_np(bases: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Vectorised ``resident_code_check_digit`` over int64 10-digit bases (0 ≤ b < 10**10).

    Follows the same UNSOURCED formula as the scalar function (built from the same weight tuple).
    """
    return _split_check_digits(_as_bases(bases, 10**10), _RESIDENT_CODE_WEIGHTS)
