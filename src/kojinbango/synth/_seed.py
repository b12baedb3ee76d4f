"""Process-independent seed derivation (never ``hash()``, which is salted per process)."""

from __future__ import annotations

import hashlib
import random


def derive_seed(*parts: object) -> int:
    """A 64-bit integer derived from ``parts`` via SHA-256 of their ``str`` forms."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def derive_rng(*parts: object) -> random.Random:
    """A private ``random.Random`` seeded from ``parts`` (the global ``random`` is never used)."""
    return random.Random(derive_seed(*parts))
