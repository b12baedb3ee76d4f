"""JSON for what travels and is stored (HTTP bodies between organisations, sealed plaintext, JSON
columns), with orjson: the exchange path encodes and decodes JSON at every hop.

Not for what is signed as a canonical form: ``documents.canonical`` writes exactly the standard
library's bytes (sorted keys; orjson only for plain JSON, where the two agree), so documents signed
before keep verifying byte for byte.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

# datetimes and dataclasses go to ``default=str`` as with json.dumps, not orjson's own forms
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def encode(obj: Any) -> bytes:
    """``obj`` as compact UTF-8 JSON — what ``json.dumps(obj, ensure_ascii=False, default=str)``
    says, without the spaces."""
    try:
        return orjson.dumps(obj, default=str, option=_OPTIONS)
    except TypeError:  # what orjson refuses (integers beyond 64 bits, keys that are not strings)
        return json.dumps(obj, ensure_ascii=False, default=str, separators=(",", ":")).encode()


def encode_text(obj: Any) -> str:
    """``encode`` as a str (SQLAlchemy's JSON columns)."""
    return encode(obj).decode()


# orjson reads an integer beyond 64 bits as a float, silently (-2**63 - 1 comes back as
# -9.223372036854776e+18); such an integer has at least 19 digits in a row
_DIGIT_MAP = bytes(0x31 if 0x30 <= b <= 0x39 else 0x30 for b in range(256))  # a digit → "1", else "0"
_LONG_DIGIT_RUN = b"1" * 19


def decode(data: bytes | str) -> Any:
    """Parse JSON; ValueError (orjson.JSONDecodeError is one) when it is not JSON.

    Integers beyond 64 bits (which ``encode`` writes) come back exact: JSON with 19 digits in a row
    anywhere — in a string too, a false alarm that costs only time — is read again with the standard
    library once orjson has found it valid."""
    value = orjson.loads(data)
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if _LONG_DIGIT_RUN in raw.translate(_DIGIT_MAP):
        return json.loads(raw)
    return value
