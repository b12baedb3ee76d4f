"""JSON for what travels and is stored (HTTP bodies between organisations, sealed plaintext, JSON
columns), with orjson: the exchange path encodes and decodes JSON at every hop.

Not for what is signed as a canonical form (``documents.canonical`` stays on the standard library,
so documents signed before keep verifying byte for byte).
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


def decode(data: bytes | str) -> Any:
    """Parse JSON; ValueError (orjson.JSONDecodeError is one) when it is not JSON."""
    return orjson.loads(data)
