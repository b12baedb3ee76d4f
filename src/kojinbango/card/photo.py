"""The applicant's photo (顔写真): validated before an application is accepted.

Rules follow the online application's published limits (JPEG, 20 KB–7 MB, 480–6000 pixels each
side; DOMAIN.md has no source for them, so they are settings here); PNG is accepted as well.  The
type is judged from the content, never from a file name.
"""

from __future__ import annotations

import hashlib
import io
import random

from PIL import Image, ImageDraw, UnidentifiedImageError

MAX_BYTES = 7 * 1024 * 1024
MIN_BYTES = 1024
MIN_SIDE = 480
MAX_SIDE = 6000
TYPES = {"JPEG": "image/jpeg", "PNG": "image/png"}


class PhotoError(ValueError):
    """The photo cannot be used for a card; the message says why."""


def validate_photo(data: bytes) -> str:
    """The photo's media type (image/jpeg or image/png), or PhotoError saying what is wrong."""
    if not isinstance(data, bytes | bytearray) or not data:
        raise PhotoError("no photo was given")
    if len(data) > MAX_BYTES:
        raise PhotoError(
            f"the photo is {len(data) // 1024} KB; at most {MAX_BYTES // (1024 * 1024)} MB is accepted"
        )
    if len(data) < MIN_BYTES:
        raise PhotoError(f"the photo is only {len(data)} bytes; at least {MIN_BYTES // 1024} KB is needed")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or ""
            width, height = img.size
            if fmt not in TYPES:
                raise PhotoError(f"the photo is a {fmt or 'unknown'} image; only JPEG or PNG is accepted")
            img.verify()
    except PhotoError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise PhotoError("the photo is not a readable JPEG or PNG image") from None
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise PhotoError(
            f"the photo is {width}×{height} pixels; each side must be {MIN_SIDE} to {MAX_SIDE} pixels"
        )
    if width > height:
        raise PhotoError(f"the photo is landscape ({width}×{height}); a portrait (縦長) photo is required")
    return TYPES[fmt]


def photo_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def synthetic_photo(seed: int, width: int = 480, height: int = 600) -> bytes:
    """A plain portrait (a drawn head and shoulders) for synthetic applicants, as PNG."""
    rng = random.Random(seed)
    bg = (rng.randrange(180, 230), rng.randrange(200, 240), rng.randrange(220, 250))
    img = Image.new("RGB", (width, height), bg)
    draw = ImageDraw.Draw(img)
    skin = (rng.randrange(200, 240), rng.randrange(160, 200), rng.randrange(130, 170))
    hair = tuple(rng.randrange(10, 80) for _ in range(3))
    cloth = tuple(rng.randrange(20, 200) for _ in range(3))
    cx = width // 2
    draw.ellipse((cx - 190, int(height * 0.62), cx + 190, height + 220), fill=cloth)
    draw.rectangle((cx - 40, int(height * 0.50), cx + 40, int(height * 0.68)), fill=skin)
    draw.ellipse((cx - 120, int(height * 0.16), cx + 120, int(height * 0.58)), fill=skin)
    draw.chord((cx - 128, int(height * 0.11), cx + 128, int(height * 0.42)), 180, 360, fill=hair)
    for dx in (-48, 48):
        draw.ellipse((cx + dx - 11, int(height * 0.34), cx + dx + 11, int(height * 0.37)), fill=(40, 30, 30))
    draw.arc((cx - 40, int(height * 0.42), cx + 40, int(height * 0.50)), 20, 160, fill=(150, 60, 60), width=4)
    # a little sensor noise so every photo differs and compresses like a photo
    px = img.load()
    assert px is not None
    for _ in range(4000):
        x, y = rng.randrange(width), rng.randrange(height)
        r, g, b = px[x, y]  # type: ignore[misc]
        d = rng.randrange(-12, 12)
        px[x, y] = (max(0, min(255, r + d)), max(0, min(255, g + d)), max(0, min(255, b + d)))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()
