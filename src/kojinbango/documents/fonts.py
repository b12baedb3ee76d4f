"""Embedded CJK fonts for printed documents (帳票用フォント).

The register holds 文字情報基盤 (MJ) characters such as 髙 (U+9AD9), 﨑 (U+FA11), 邉, 齋 and the
supplementary-plane 𠮷 (U+20BB7), and some names are stored as a base character plus an
異体字セレクタ (IVS, U+E0100–U+E01EF).  Only IPAmj明朝 (Debian ``fonts-ipamj-mincho``) covers
all of them, so it is the face for everything taken from the register.  IPAexゴシック (Debian
``fonts-ipaexfont-gothic``) is an optional second face for the static labels of a form.

reportlab embeds TrueType fonts as 256-glyph subsets.  Three things are adjusted here, all local
to fonts registered through this module except the first, which is a plain bug fix:

* reportlab (5.1) writes a supplementary-plane code point into the ToUnicode CMap as five hex
  digits (``<20BB7>``), which PDF readers truncate (𠮷 extracts as U+20BB "₻"); the glyph itself
  prints correctly.  ``reportlab.pdfbase.ttfonts.makeToUnicodeCMap`` is replaced by a writer that
  emits UTF-16BE (surrogate pairs ``<D842DFB7>``, IVS pseudo codes below); for BMP text its output
  is byte-identical to the stock writer's.
* reportlab ignores the cmap format 14 subtable, so an IVS sequence would print the
  ``.notdef`` glyph.  Each (base, selector) pair the font knows is given a pseudo code point in
  Supplementary Private Use Area-A (U+F0000…) that maps to the variant glyph; text is passed
  through :func:`encode_text` before drawing and the ToUnicode CMap maps the pseudo code back to
  the original two-code-point sequence, so copy/paste and text extraction give the register's
  exact characters.
* Subsetting copies the whole ``glyf`` table (45 MB for IPAmj) once per 256-glyph subset; the
  face caches its tables so the copy happens once per process.
"""

from __future__ import annotations

import os
import re
import struct
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from reportlab.pdfbase import pdfmetrics, ttfonts
from reportlab.pdfbase.ttfonts import TTFError, TTFont

FONT_ENV = "KOJINBANGO_FONT"
"""Environment variable naming a TrueType (glyf-outline) font file to use instead of IPAmj明朝."""

MINCHO_PACKAGE = "fonts-ipamj-mincho"
GOTHIC_PACKAGE = "fonts-ipaexfont-gothic"

FONT_NAME = "KojinbangoMincho"
LABEL_FONT_NAME = "KojinbangoGothic"

_MINCHO_PATHS: tuple[Path, ...] = (
    Path("/usr/share/fonts/truetype/ipamj/ipamjm.ttf"),
    Path("/usr/share/fonts/opentype/ipamj/ipamjm.ttf"),
    Path("/usr/local/share/fonts/ipamjm.ttf"),
)
_GOTHIC_PATHS: tuple[Path, ...] = (
    Path("/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf"),
    Path("/usr/share/fonts/truetype/ipaexfont-gothic/ipaexg.ttf"),
    Path("/usr/local/share/fonts/ipaexg.ttf"),
)

_PSEUDO_BASE = 0xF0000  # Supplementary Private Use Area-A; IPAmj maps nothing there
_VARIATION_SELECTORS = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")

_lock = threading.Lock()
_registered: dict[str, TTFont] = {}
_ivs_to_pseudo: dict[tuple[int, int], int] = {}
_pseudo_to_text: dict[int, str] = {}


def cjk_font_path() -> Path:
    """The font file for register text: ``$KOJINBANGO_FONT`` or IPAmj明朝 from its Debian package."""
    override = os.environ.get(FONT_ENV)
    if override:
        path = Path(override)
        if not path.is_file():
            raise RuntimeError(f"{FONT_ENV}={override!r} does not name a font file")
        return path
    for path in _MINCHO_PATHS:
        if path.is_file():
            return path
    raise RuntimeError(
        "IPAmj明朝 (ipamjm.ttf) not found; install the Debian package "
        f"'{MINCHO_PACKAGE}' (apt-get install {MINCHO_PACKAGE}) or set {FONT_ENV} to a TrueType font"
    )


def label_font_path() -> Path | None:
    """IPAexゴシック from ``fonts-ipaexfont-gothic`` if installed (optional label face)."""
    for path in _GOTHIC_PATHS:
        if path.is_file():
            return path
    return None


def register_fonts() -> str:
    """Register the register-text font with reportlab once per process; return its name."""
    font = _registered.get(FONT_NAME)
    if font is None:
        with _lock:
            font = _registered.get(FONT_NAME)
            if font is None:
                font = _load(FONT_NAME, cjk_font_path())
                _install_ivs(font)
                _registered[FONT_NAME] = font
    return FONT_NAME


def register_label_font() -> str:
    """Register IPAexゴシック for static labels if installed; otherwise return the main font's name."""
    if LABEL_FONT_NAME in _registered:
        return LABEL_FONT_NAME
    path = label_font_path()
    if path is None:
        return register_fonts()
    with _lock:
        if LABEL_FONT_NAME not in _registered:
            _registered[LABEL_FONT_NAME] = _load(LABEL_FONT_NAME, path)
    return LABEL_FONT_NAME


def encode_text(text: str) -> str:
    """Prepare register text for drawing with :func:`register_fonts`' font.

    IVS sequences the font knows become their pseudo code point; an unknown selector is dropped
    (the base glyph prints; :func:`missing_glyphs` reports such sequences).
    """
    if _VARIATION_SELECTORS.search(text) is None:
        return text
    out: list[str] = []
    for ch in text:
        if _VARIATION_SELECTORS.fullmatch(ch) and out:
            pseudo = _ivs_to_pseudo.get((ord(out[-1]), ord(ch)))
            if pseudo is not None:
                out[-1] = chr(pseudo)
            continue
        if not _VARIATION_SELECTORS.fullmatch(ch):
            out.append(ch)
    return "".join(out)


def missing_glyphs(text: str, font_name: str | None = None) -> list[str]:
    """Characters (or base+IVS sequences) of ``text`` the font cannot print, in order of appearance."""
    name = font_name or register_fonts()
    font = _registered.get(name) or pdfmetrics.getFont(name)
    char_to_glyph = font.face.charToGlyph
    if _VARIATION_SELECTORS.search(text) is None:  # the common case, once per field of every page
        return [
            ch for ch in text if (ord(ch) not in char_to_glyph or ord(ch) >= _PSEUDO_BASE) and ch != "\u00a0"
        ]
    missing: list[str] = []
    previous = ""
    for ch in text:
        if _VARIATION_SELECTORS.fullmatch(ch):
            if previous and (ord(previous), ord(ch)) not in _ivs_to_pseudo:
                missing.append(previous + ch)
        elif (ord(ch) not in char_to_glyph or ord(ch) >= _PSEUDO_BASE) and ch != "\u00a0":
            missing.append(ch)
        previous = ch
    return missing


def _load(name: str, path: Path) -> TTFont:
    _install_tounicode_fix()
    try:
        font = TTFont(name, str(path))
    except TTFError as exc:
        raise RuntimeError(f"cannot use {path} as a TrueType font for PDF embedding: {exc}") from exc
    _cache_tables(font.face)
    pdfmetrics.registerFont(font)
    return font


def _cache_tables(face: object) -> None:
    """Make ``face.get_table`` return one cached bytes object per table (glyf is copied once)."""
    original: Callable[[str], bytes] = face.get_table  # type: ignore[attr-defined]
    cache: dict[str, bytes] = {}

    def get_table(tag: str) -> bytes:
        data = cache.get(tag)
        if data is None:
            data = cache[tag] = original(tag)
        return data

    setattr(face, "get_table", get_table)  # noqa: B010 - instance override of a method


def _install_ivs(font: TTFont) -> None:
    """Map every IVS sequence of the font's cmap format 14 subtable to a pseudo code point."""
    face = font.face
    try:
        cmap = face.get_table("cmap")
    except KeyError:
        return
    sequences = _parse_uvs(cmap, face.charToGlyph)
    for offset, ((base, selector), glyph) in enumerate(sorted(sequences.items())):
        pseudo = _PSEUDO_BASE + offset
        if pseudo > 0xFFFFD or pseudo in face.charToGlyph:
            break
        face.charToGlyph[pseudo] = glyph
        face.charWidths[pseudo] = face.charWidths.get(base, face.defaultWidth)
        _ivs_to_pseudo[(base, selector)] = pseudo
        _pseudo_to_text[pseudo] = chr(base) + chr(selector)


def _parse_uvs(cmap: bytes, char_to_glyph: dict[int, int]) -> dict[tuple[int, int], int]:
    """(base, selector) → glyph id from a cmap format 14 (Unicode Variation Sequences) subtable."""
    result: dict[tuple[int, int], int] = {}
    (count,) = struct.unpack_from(">H", cmap, 2)
    for i in range(count):
        _platform, _encoding, offset = struct.unpack_from(">HHL", cmap, 4 + 8 * i)
        if struct.unpack_from(">H", cmap, offset)[0] != 14:
            continue
        (records,) = struct.unpack_from(">L", cmap, offset + 6)
        for r in range(records):
            at = offset + 10 + 11 * r
            selector = int.from_bytes(cmap[at : at + 3], "big")
            default_at, non_default_at = struct.unpack_from(">LL", cmap, at + 3)
            if default_at:
                base_at = offset + default_at
                (ranges,) = struct.unpack_from(">L", cmap, base_at)
                for j in range(ranges):
                    p = base_at + 4 + 4 * j
                    start = int.from_bytes(cmap[p : p + 3], "big")
                    for base in range(start, start + cmap[p + 3] + 1):
                        if base in char_to_glyph:
                            result[(base, selector)] = char_to_glyph[base]
            if non_default_at:
                base_at = offset + non_default_at
                (mappings,) = struct.unpack_from(">L", cmap, base_at)
                for j in range(mappings):
                    p = base_at + 4 + 5 * j
                    base = int.from_bytes(cmap[p : p + 3], "big")
                    (glyph,) = struct.unpack_from(">H", cmap, p + 3)
                    result[(base, selector)] = glyph
    return result


def _utf16_hex(text: str) -> str:
    return text.encode("utf-16-be").hex().upper()


def _to_unicode_cmap(fontname: str, subset: Sequence[int]) -> str:
    """reportlab's ToUnicode CMap, with UTF-16BE destinations (surrogates, IVS sequences)."""
    entries = [
        f"<{i:02X}> <{_utf16_hex(_pseudo_to_text.get(code) or chr(code))}>" for i, code in enumerate(subset)
    ]
    return "\n".join(
        [
            "/CIDInit /ProcSet findresource begin",
            "12 dict begin",
            "begincmap",
            "/CIDSystemInfo",
            f"<< /Registry ({fontname})",
            f"/Ordering ({fontname})",
            "/Supplement 0",
            ">> def",
            f"/CMapName /{fontname} def",
            "/CMapType 2 def",
            "1 begincodespacerange",
            f"<00> <{len(subset) - 1:02X}>",
            "endcodespacerange",
            f"{len(subset)} beginbfchar",
            *entries,
            "endbfchar",
            "endcmap",
            "CMapName currentdict /CMap defineresource pop",
            "end",
            "end",
        ]
    )


def _install_tounicode_fix() -> None:
    # addObjects() looks the writer up as a module global at save time.
    ttfonts.makeToUnicodeCMap = _to_unicode_cmap
