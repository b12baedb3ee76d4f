"""QR code (model 2, ISO/IEC 18004) encoder for print runs: many payloads at once, with numpy.

A print run of 個人番号通知書 carries one QR code per page, and all of them have the same shape: a
fixed application URL followed by a 23-digit 申請書ID.  Payloads of one shape (mode and length)
share the QR version, the error-correction level, the block structure and the module placement,
so a whole run is encoded as arrays:

* the data codewords of all N payloads form an (N, k) ``uint8`` array (mode indicator, character
  count, data bits, terminator, pad codewords);
* the Reed–Solomon error-correction codewords of every block are computed for all N rows at once
  by polynomial division over GF(256) (log/antilog tables, one table lookup and one XOR per data
  codeword);
* the interleaved codewords are placed through a precomputed index map of the data modules;
* the data mask is chosen per symbol by the penalty score of ISO/IEC 18004 §7.8.3 (N1–N4),
  computed for the 8 masks of all N symbols at once on rows and columns packed into 64-bit words.

The encoding choices follow segno (``segno.make(payload, error="m", micro=False)``): one segment
whose mode is numeric, alphanumeric, kanji or byte (ISO-8859-1, else Shift_JIS, else UTF-8 bytes),
the smallest version that holds it, and the error level raised while the version stays the same.
Like segno, a bit stream that ends on a codeword boundary after its terminator gets one zero
codeword before the pad codewords (decoders stop at the terminator).  For the same version, level
and mask the symbol is bit-for-bit segno's (the tests check this).  The automatic mask choice
applies the penalty rules of the standard literally — every 1:1:3:1:1 pattern with four light
modules on one side scores, where segno skips a pattern overlapping one it has just counted — so
for about a third of the application URLs it picks another mask than segno would; any mask gives
a valid symbol (the mask is recorded in the format information).

``encode`` of a 1,000-payload run takes about 20 ms (segno: about 1.8 s); a single payload goes
through the same code (``encode_one``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_ERROR = "M"
_LEVELS = "LMQH"  # in increasing order of error correction
_FORMAT_ECL_BITS = {"L": 1, "M": 0, "Q": 3, "H": 2}

# ISO/IEC 18004 Table 9: error-correction codewords per block and number of blocks, versions 1–40.
# fmt: off
_ECC_PER_BLOCK = {
    "L": (7, 10, 15, 20, 26, 18, 20, 24, 30, 18, 20, 24, 26, 30, 22, 24, 28, 30, 28, 28,
          28, 28, 30, 30, 26, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30),
    "M": (10, 16, 26, 18, 24, 16, 18, 22, 22, 26, 30, 22, 22, 24, 24, 28, 28, 26, 26, 26,
          26, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28),
    "Q": (13, 22, 18, 26, 18, 24, 18, 22, 20, 24, 28, 26, 24, 20, 30, 24, 28, 28, 26, 30,
          28, 30, 30, 30, 30, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30),
    "H": (17, 28, 22, 16, 22, 28, 26, 26, 24, 28, 24, 28, 22, 24, 24, 30, 28, 28, 26, 28,
          30, 24, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30),
}
_BLOCKS = {
    "L": (1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 4, 4, 6, 6, 6, 6, 7, 8,
          8, 9, 9, 10, 12, 12, 12, 13, 14, 15, 16, 17, 18, 19, 19, 20, 21, 22, 24, 25),
    "M": (1, 1, 1, 2, 2, 4, 4, 4, 5, 5, 5, 8, 9, 9, 10, 10, 11, 13, 14, 16,
          17, 17, 18, 20, 21, 23, 25, 26, 28, 29, 31, 33, 35, 37, 38, 40, 43, 45, 47, 49),
    "Q": (1, 1, 2, 2, 4, 4, 6, 6, 8, 8, 8, 10, 12, 16, 12, 17, 16, 18, 21, 20,
          23, 23, 25, 27, 29, 34, 34, 35, 38, 40, 43, 45, 48, 51, 53, 56, 59, 62, 65, 68),
    "H": (1, 1, 2, 4, 4, 4, 5, 6, 8, 8, 11, 11, 16, 16, 18, 16, 19, 21, 25, 25,
          25, 34, 30, 32, 35, 37, 40, 42, 45, 48, 51, 54, 57, 60, 63, 66, 70, 74, 77, 81),
}
# fmt: on

MODE_NUMERIC, MODE_ALPHANUMERIC, MODE_BYTE, MODE_KANJI = 1, 2, 4, 8
_COUNT_BITS = {  # character count indicator length for versions 1–9, 10–26, 27–40
    MODE_NUMERIC: (10, 12, 14),
    MODE_ALPHANUMERIC: (9, 11, 13),
    MODE_BYTE: (8, 16, 16),
    MODE_KANJI: (8, 10, 12),
}
_ALPHANUMERIC = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_ALPHANUMERIC_RE = re.compile(b"^[" + re.escape(_ALPHANUMERIC) + b"]+\\Z")
_ALPHANUMERIC_VALUE = np.zeros(256, dtype=np.int64)
_ALPHANUMERIC_VALUE[np.frombuffer(_ALPHANUMERIC, dtype=np.uint8)] = np.arange(len(_ALPHANUMERIC))

_CHUNK = 2048  # symbols encoded per array pass (bounds the memory of the mask candidates)


# --------------------------------------------------------------------------------------------
# Payload analysis (one segment, as segno does it).


def payload_bytes(payload: str | bytes) -> bytes:
    """The bytes a payload is encoded from: ISO-8859-1 if possible, else Shift_JIS, else UTF-8."""
    if isinstance(payload, bytes):
        return payload
    for encoding in ("iso-8859-1", "shift_jis"):
        try:
            return payload.encode(encoding)
        except UnicodeError:
            pass
    return payload.encode("utf-8")


def _is_kanji(data: bytes) -> bool:
    if not data or len(data) % 2:
        return False
    for i in range(0, len(data), 2):
        code = data[i] << 8 | data[i + 1]
        if not (0x8140 <= code <= 0x9FFC or 0xE040 <= code <= 0xEBBF):
            return False
    return True


def payload_mode(data: bytes) -> int:
    """The QR mode of ``data``: numeric, alphanumeric, kanji (Shift_JIS pairs) or byte."""
    if data.isdigit():
        return MODE_NUMERIC
    if _ALPHANUMERIC_RE.match(data):
        return MODE_ALPHANUMERIC
    if _is_kanji(data):
        return MODE_KANJI
    return MODE_BYTE


def _payload_bits(mode: int, length: int) -> int:
    """Bits of the data of a ``length``-byte payload in ``mode`` (without mode and count)."""
    if mode == MODE_NUMERIC:
        return 10 * (length // 3) + (0, 4, 7)[length % 3]
    if mode == MODE_ALPHANUMERIC:
        return 11 * (length // 2) + 6 * (length % 2)
    if mode == MODE_KANJI:
        return 13 * (length // 2)
    return 8 * length


def _count_bits(mode: int, version: int) -> int:
    return _COUNT_BITS[mode][0 if version <= 9 else 1 if version <= 26 else 2]


def _raw_codewords(version: int) -> int:
    """Codewords (data + error correction) of a symbol: its data modules // 8."""
    return int((~_function_region(version)).sum()) // 8


def _data_codewords(version: int, error: str) -> int:
    return _raw_codewords(version) - _ECC_PER_BLOCK[error][version - 1] * _BLOCKS[error][version - 1]


def choose_version(mode: int, length: int, error: str = DEFAULT_ERROR) -> tuple[int, str]:
    """Smallest version holding the payload at ``error``, and the highest level that version allows."""
    error = error.upper()
    for version in range(1, 41):
        bits = 4 + _count_bits(mode, version) + _payload_bits(mode, length)
        if bits <= 8 * _data_codewords(version, error):
            for level in _LEVELS[_LEVELS.index(error) + 1 :]:
                if bits > 8 * _data_codewords(version, level):
                    break
                error = level
            return version, error
    raise ValueError("QR payload too long for any QR code version")


# --------------------------------------------------------------------------------------------
# Symbol layout: function patterns, placement order, masks, block structure.


@functools.lru_cache(maxsize=64)
def _function_region(version: int) -> np.ndarray:
    """Modules that are not data: finders, separators, format and version info, timing, alignment."""
    n = version * 4 + 17
    region = np.zeros((n, n), dtype=bool)
    region[:9, :9] = region[:9, n - 8 :] = region[n - 8 :, :9] = True
    region[6, :] = region[:, 6] = True
    for r, c in _alignment_centres(version):
        region[r - 2 : r + 3, c - 2 : c + 3] = True
    if version >= 7:
        region[:6, n - 11 : n - 8] = region[n - 11 : n - 8, :6] = True
    region.flags.writeable = False
    return region


def alignment_positions(version: int) -> list[int]:
    if version == 1:
        return []
    count = version // 7 + 2
    step = 26 if version == 32 else (version * 4 + count * 2 + 1) // (count * 2 - 2) * 2
    size = version * 4 + 17
    return [6] + sorted(size - 7 - k * step for k in range(count - 1))


def _alignment_centres(version: int) -> list[tuple[int, int]]:
    positions = alignment_positions(version)
    if not positions:
        return []
    first, last = positions[0], positions[-1]
    corners = {(first, first), (first, last), (last, first)}
    return [(r, c) for r in positions for c in positions if (r, c) not in corners]


def _function_values(version: int) -> np.ndarray:
    """Finder, separator, timing and alignment patterns, version information and the dark module."""
    n = version * 4 + 17
    values = np.zeros((n, n), dtype=bool)
    values[6, 8 : n - 8 : 2] = values[8 : n - 8 : 2, 6] = True  # timing patterns
    i, j = np.indices((7, 7))
    finder = np.maximum(abs(i - 3), abs(j - 3)) != 2
    values[:7, :7] = values[:7, n - 7 :] = values[n - 7 :, :7] = finder
    i, j = np.indices((5, 5))
    alignment = np.maximum(abs(i - 2), abs(j - 2)) != 1
    for r, c in _alignment_centres(version):
        values[r - 2 : r + 3, c - 2 : c + 3] = alignment
    if version >= 7:
        rem = version
        for _ in range(12):
            rem = (rem << 1) ^ ((rem >> 11) * 0x1F25)
        bits = version << 12 | rem
        for k in range(18):
            a, b = n - 11 + k % 3, k // 3
            values[b, a] = values[a, b] = bool(bits >> k & 1)
    values[n - 8, 8] = True  # the dark module
    return values


@functools.lru_cache(maxsize=64)
def _mask_patterns(n: int) -> np.ndarray:
    """The eight data-mask patterns (ISO/IEC 18004 Table 10) as a (8, n, n) bool array."""
    i, j = np.indices((n, n))
    patterns = np.stack(
        [
            (i + j) % 2 == 0,
            i % 2 == 0,
            j % 3 == 0,
            (i + j) % 3 == 0,
            (i // 2 + j // 3) % 2 == 0,
            (i * j) % 2 + (i * j) % 3 == 0,
            ((i * j) % 2 + (i * j) % 3) % 2 == 0,
            ((i + j) % 2 + (i * j) % 3) % 2 == 0,
        ]
    )
    patterns.flags.writeable = False
    return patterns


def format_bits(error: str, mask: int) -> list[bool]:
    """The 15 format information bits (BCH-coded level and mask, XOR 0x5412), bit 0 first."""
    data = _FORMAT_ECL_BITS[error.upper()] << 3 | mask
    rem = data
    for _ in range(10):
        rem = (rem << 1) ^ ((rem >> 9) * 0x537)
    bits = (data << 10 | rem) ^ 0x5412
    return [bool(bits >> k & 1) for k in range(15)]


def place_format(matrix: np.ndarray, bits: Sequence[bool]) -> None:
    """Write both copies of the format information (and the dark module) into ``matrix``."""
    n = matrix.shape[0]
    for k in range(6):
        matrix[k, 8] = bits[k]
    matrix[7, 8], matrix[8, 8], matrix[8, 7] = bits[6], bits[7], bits[8]
    for k in range(9, 15):
        matrix[8, 14 - k] = bits[k]
    for k in range(8):
        matrix[8, n - 1 - k] = bits[k]
    for k in range(8, 15):
        matrix[n - 15 + k, 8] = bits[k]
    matrix[n - 8, 8] = True  # the dark module


def _placement(region: np.ndarray) -> np.ndarray:
    """Flat indices of the data modules in bit order: two-module columns, right to left, zigzag."""
    n = region.shape[0]
    order: list[int] = []
    right = n - 1
    while right >= 1:
        if right == 6:  # the vertical timing pattern is skipped
            right = 5
        upward = (right + 1) & 2 == 0
        for vertical in range(n):
            y = n - 1 - vertical if upward else vertical
            for x in (right, right - 1):
                if not region[y, x]:
                    order.append(y * n + x)
        right -= 2
    return np.array(order, dtype=np.intp)


@dataclass(frozen=True)
class _Layout:
    version: int
    error: str
    n: int
    data_codewords: int
    ecc_len: int
    blocks: tuple[np.ndarray, ...]  # per block length: (blocks, data length) indices into the data
    block_rows: tuple[np.ndarray, ...]  # per block length: the blocks' numbers
    block_count: int
    interleave: np.ndarray  # final codeword i = concat(data, ecc by block)[interleave[i]]
    positions: np.ndarray  # flat module index of each bit of the final message
    masks: np.ndarray  # (8, n, n) the mask patterns on the data modules only
    templates: np.ndarray  # (8, n, n) function patterns with the format information of each mask
    generator: np.ndarray  # (256, ecc_len): factor × generator coefficients


@functools.lru_cache(maxsize=32)
def _layout(version: int, error: str) -> _Layout:
    n = version * 4 + 17
    region = _function_region(version)
    raw = _raw_codewords(version)
    ecc_len = _ECC_PER_BLOCK[error][version - 1]
    count = _BLOCKS[error][version - 1]
    short_len = raw // count - ecc_len  # data codewords of a short block; long ones have one more
    shorts = count - raw % count
    lengths = [short_len] * shorts + [short_len + 1] * (count - shorts)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    data_codewords = int(sum(lengths))
    groups, rows = [], []
    for length in sorted(set(lengths)):
        members = np.array([b for b in range(count) if lengths[b] == length], dtype=np.intp)
        groups.append(starts[members][:, None] + np.arange(length)[None, :])
        rows.append(members)
    order = [starts[b] + i for i in range(max(lengths)) for b in range(count) if i < lengths[b]]
    order += [data_codewords + b * ecc_len + i for i in range(ecc_len) for b in range(count)]
    positions = _placement(region)[: raw * 8]
    masks = _mask_patterns(n) & ~region
    values = _function_values(version)
    templates = np.repeat(values[None], 8, axis=0)
    for mask in range(8):
        place_format(templates[mask], format_bits(error, mask))
    for array in (masks, templates):
        array.flags.writeable = False
    return _Layout(
        version=version,
        error=error,
        n=n,
        data_codewords=data_codewords,
        ecc_len=ecc_len,
        blocks=tuple(groups),
        block_rows=tuple(rows),
        block_count=count,
        interleave=np.array(order, dtype=np.intp),
        positions=positions,
        masks=masks,
        templates=templates,
        generator=_generator_table(ecc_len),
    )


# --------------------------------------------------------------------------------------------
# Reed–Solomon over GF(256), primitive polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11D).


def _gf_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    exp = np.zeros(512, dtype=np.int64)
    log = np.zeros(256, dtype=np.int64)
    x = 1
    for i in range(255):
        exp[i] = x
        log[x] = i
        x <<= 1
        if x & 0x100:
            x ^= 0x11D
    exp[255:510] = exp[:255]
    a = np.arange(256)
    product = exp[(log[a][:, None] + log[a][None, :]) % 255]
    product[0, :] = product[:, 0] = 0
    return exp, log, product.astype(np.uint8)


_GF_EXP, _GF_LOG, _GF_MUL = _gf_tables()


@functools.lru_cache(maxsize=32)
def _generator_table(degree: int) -> np.ndarray:
    """Row f: f × the coefficients (highest power first, leading 1 omitted) of Π (x − α^i)."""
    poly = [1]
    for i in range(degree):
        root = int(_GF_EXP[i])
        poly = [
            (poly[j] if j < len(poly) else 0) ^ (int(_GF_MUL[poly[j - 1], root]) if j else 0)
            for j in range(len(poly) + 1)
        ]
    table = _GF_MUL[:, np.array(poly[1:], dtype=np.intp)].copy()
    table.flags.writeable = False
    return table


def reed_solomon(data: np.ndarray, generator: np.ndarray) -> np.ndarray:
    """Error-correction codewords of every row of ``data`` (M, k) uint8: the remainder of the
    division by the generator polynomial, computed for all rows at once."""
    rows, k = data.shape
    degree = generator.shape[1]
    work = np.zeros((rows, k + degree), dtype=np.uint8)
    work[:, :k] = data
    for i in range(k):
        work[:, i + 1 : i + 1 + degree] ^= generator[work[:, i]]
    return work[:, k:]


# --------------------------------------------------------------------------------------------
# Encoding.


def _segment_values(mode: int, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Numeric, alphanumeric or kanji data of (N, L) payload bytes: (N, groups) values, bit widths."""
    rows, length = data.shape
    tail_widths: tuple[int, ...]
    if mode == MODE_KANJI:
        code = data[:, 0::2].astype(np.int64) << 8 | data[:, 1::2]
        code -= np.where(code <= 0x9FFC, 0x8140, 0xC140)
        return (code >> 8) * 0xC0 + (code & 0xFF), np.full(length // 2, 13)
    if mode == MODE_NUMERIC:
        digits, size, tail_widths = data.astype(np.int64) - 48, 3, (0, 4, 7)
        weights = [100, 10, 1]
        full_width = 10
    else:
        digits, size, tail_widths = _ALPHANUMERIC_VALUE[data], 2, (0, 6)
        weights = [45, 1]
        full_width = 11
    full, tail = divmod(length, size)
    values = [digits[:, : full * size].reshape(rows, full, size) @ np.array(weights)]
    widths = [np.full(full, full_width)]
    if tail:
        values.append(digits[:, full * size :] @ np.array(weights[size - tail :])[:, None])
        widths.append(np.array([tail_widths[tail]]))
    return np.concatenate(values, axis=1), np.concatenate(widths)


def data_codewords(payloads: Sequence[bytes], mode: int, layout: _Layout) -> np.ndarray:
    """Data codewords (N, k) uint8 of equal-length payloads in ``mode``."""
    rows = len(payloads)
    length = len(payloads[0])
    data = np.frombuffer(b"".join(payloads), dtype=np.uint8).reshape(rows, length)
    count = length // 2 if mode == MODE_KANJI else length
    count_bits = _count_bits(mode, layout.version)
    header = [mode >> k & 1 for k in (3, 2, 1, 0)] + [count >> k & 1 for k in range(count_bits - 1, -1, -1)]
    capacity = layout.data_codewords * 8
    used = len(header) + _payload_bits(mode, length)
    bits = np.zeros((rows, capacity), dtype=np.uint8)  # terminator and bit padding stay zero
    bits[:, : len(header)] = header
    if mode == MODE_BYTE:
        bits[:, len(header) : used] = np.unpackbits(data, axis=1)
    else:
        values, widths = _segment_values(mode, data)
        group = np.repeat(np.arange(len(widths)), widths)
        shift = np.concatenate([np.arange(w - 1, -1, -1) for w in widths])
        bits[:, len(header) : used] = (values[:, group] >> shift) & 1
    codewords = np.packbits(bits, axis=1)
    # Terminator (up to four zero bits), zero bits to the codeword boundary, then pad codewords.
    # Like segno, a stream ending on a boundary after its terminator gets one zero codeword more.
    first_pad = min((min(used + 4, capacity) // 8) + 1, layout.data_codewords)
    codewords[:, first_pad:] = np.resize(
        np.array([0xEC, 0x11], dtype=np.uint8), layout.data_codewords - first_pad
    )
    return codewords


def final_message(data: np.ndarray, layout: _Layout) -> np.ndarray:
    """Data codewords (N, k) with error correction, interleaved: (N, raw codewords) uint8."""
    rows = data.shape[0]
    ecc = np.empty((rows, layout.block_count, layout.ecc_len), dtype=np.uint8)
    for indices, members in zip(layout.blocks, layout.block_rows, strict=True):
        blocks = data[:, indices]  # (N, blocks, length)
        remainder = reed_solomon(blocks.reshape(-1, indices.shape[1]), layout.generator)
        ecc[:, members] = remainder.reshape(rows, len(members), layout.ecc_len)
    return np.concatenate([data, ecc.reshape(rows, -1)], axis=1)[:, layout.interleave]


def _unmasked(message: np.ndarray, layout: _Layout) -> np.ndarray:
    """The data modules of each symbol (N, n, n) bool, before masking; function modules are light."""
    rows = message.shape[0]
    modules = np.zeros((rows, layout.n * layout.n), dtype=bool)
    modules[:, layout.positions] = np.unpackbits(message, axis=1).view(bool)
    return modules.reshape(rows, layout.n, layout.n)


def encode(
    payloads: Sequence[str | bytes], error: str = DEFAULT_ERROR, mask: int | None = None
) -> list[np.ndarray]:
    """QR codes of ``payloads`` as (n, n) bool arrays (True = dark), without quiet zone.

    Payloads of the same mode and length are encoded together.  ``mask=None`` chooses the data
    mask of each symbol by penalty score; 0–7 forces one.
    """
    if mask is not None and mask not in range(8):
        raise ValueError("QR mask must be 0–7")
    error = error.upper()
    if error not in _LEVELS:
        raise ValueError("QR error level must be one of L, M, Q, H")
    prepared = [payload_bytes(p) for p in payloads]
    groups: dict[tuple[int, int], list[int]] = {}
    for i, data in enumerate(prepared):
        if not data:
            raise ValueError("empty QR payload")
        groups.setdefault((payload_mode(data), len(data)), []).append(i)
    out: list[np.ndarray] = [np.empty((0, 0), dtype=bool)] * len(prepared)
    for (mode, length), members in groups.items():
        layout = _layout(*choose_version(mode, length, error))
        for start in range(0, len(members), _CHUNK):
            chunk = members[start : start + _CHUNK]
            codewords = data_codewords([prepared[i] for i in chunk], mode, layout)
            symbols = _apply_mask(_unmasked(final_message(codewords, layout), layout), layout, mask)
            for i, symbol in zip(chunk, symbols, strict=True):
                out[i] = symbol
    return out


def encode_one(payload: str | bytes, error: str = DEFAULT_ERROR, mask: int | None = None) -> np.ndarray:
    return encode([payload], error, mask)[0]


def _apply_mask(unmasked: np.ndarray, layout: _Layout, mask: int | None) -> np.ndarray:
    if mask is None:
        chosen = np.argmin(mask_penalties(unmasked, layout), axis=1)
    else:
        chosen = np.full(unmasked.shape[0], mask)
    return unmasked ^ layout.masks[chosen] | layout.templates[chosen]


# --------------------------------------------------------------------------------------------
# Mask choice: ISO/IEC 18004 §7.8.3 penalty of the 8 candidates of every symbol.

_BITWISE_COUNT = getattr(np, "bitwise_count", None)  # numpy >= 2
_BYTE_BITS = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _popcount(words: np.ndarray) -> np.ndarray:
    """Set bits of each uint64."""
    if _BITWISE_COUNT is not None:
        return np.asarray(_BITWISE_COUNT(words))
    return _BYTE_BITS[words.view(np.uint8)].reshape(*words.shape, 8).sum(axis=-1, dtype=np.uint8)


def _pack_lines(modules: np.ndarray) -> np.ndarray:
    """(..., n, n) bool → (..., n) uint64: line i, module j at bit j + 4 (4 light modules each side)."""
    *lead, lines, n = modules.shape
    packed = np.packbits(modules, axis=-1, bitorder="little")
    words = np.zeros((*lead, lines, 8), dtype=np.uint8)
    words[..., : packed.shape[-1]] = packed
    return words.view("<u8")[..., 0] << np.uint64(4)


_PENALTY_CHUNK = 40  # symbols scored per pass: temporaries stay small (no page faults) and cached


@functools.lru_cache(maxsize=32)
def _packed_patterns(version: int, error: str) -> tuple[np.ndarray, ...]:
    """Masks and templates of a layout packed by rows and by columns: four (8, n) uint64 arrays."""
    layout = _layout(version, error)
    masks, templates = layout.masks, layout.templates
    return (
        _pack_lines(masks),
        _pack_lines(templates),
        _pack_lines(masks.swapaxes(1, 2)),
        _pack_lines(templates.swapaxes(1, 2)),
    )


def mask_penalties(unmasked: np.ndarray, layout: _Layout) -> np.ndarray:
    """Penalty N1+N2+N3+N4 of each of the 8 masked candidates of each symbol: (N, 8) int."""
    n = layout.n
    if n + 8 > 64:  # versions 10 and up do not fit a 64-bit line: score the candidates as arrays
        return np.stack(
            [_penalties(unmasked[i] ^ layout.masks | layout.templates) for i in range(unmasked.shape[0])]
        )
    row_masks, row_templates, column_masks, column_templates = _packed_patterns(layout.version, layout.error)
    pairs = np.uint64(((1 << (n - 1)) - 1) << 4)  # bit p: modules p and p + 1 are both in the symbol
    one = np.uint64(1)
    total = np.empty((unmasked.shape[0], 8), dtype=np.int64)
    for start in range(0, unmasked.shape[0], _PENALTY_CHUNK):
        chunk = unmasked[start : start + _PENALTY_CHUNK]
        rows = _pack_lines(chunk)[:, None, :] ^ row_masks | row_templates  # (c, 8, n)
        columns = _pack_lines(chunk.swapaxes(1, 2))[:, None, :] ^ column_masks | column_templates
        score = _line_penalties(rows, pairs) + _line_penalties(columns, pairs)
        # N2: each 2 x 2 block of one colour scores 3.
        a, b = rows[..., :-1], rows[..., 1:]
        same = ~((a ^ b) | (a ^ (a >> one)) | (a ^ (b >> one))) & pairs
        score += 3 * _popcount(same).sum(axis=-1, dtype=np.int64)
        # N4: 10 per 5 % deviation of the dark proportion from 50 %.
        dark = _popcount(rows).sum(axis=-1, dtype=np.int64)
        score += 10 * (np.abs(dark * 20 - n * n * 10) // (n * n))
        total[start : start + _PENALTY_CHUNK] = score
    return total


def _line_penalties(v: np.ndarray, pairs: np.uint64) -> np.ndarray:
    """N1 + N3 of packed lines (..., lines) uint64 (module j at bit j + 4), summed over the lines."""
    s1, s2, s3 = v >> np.uint64(1), v >> np.uint64(2), v >> np.uint64(3)
    # N1: a run of L >= 5 same-colour modules scores L - 2 = (windows of five) + 2.
    eq = ~(v ^ s1) & pairs  # bit p: modules p and p + 1 have the same colour
    two = eq & (eq >> np.uint64(1))
    five = two & (two >> np.uint64(2))  # modules p .. p + 4
    starts = five & ~(eq << np.uint64(1))
    # N3: dark-light-dark-dark-dark-light-dark with four light modules before or after it: 40.
    core = v & s2 & s3 & (v >> np.uint64(4)) & (v >> np.uint64(6)) & ~(s1 | (v >> np.uint64(5)))
    dark4 = v | s1 | s2 | s3  # bit p: some dark module among p .. p + 3
    found = core & ~((dark4 << np.uint64(4)) & (dark4 >> np.uint64(7)))
    return (
        _popcount(five).sum(axis=-1, dtype=np.int64)
        + 2 * _popcount(starts).sum(axis=-1, dtype=np.int64)
        + 40 * _popcount(found).sum(axis=-1, dtype=np.int64)
    )


def _penalties(candidates: np.ndarray) -> np.ndarray:
    """Penalty N1+N2+N3+N4 of each (n, n) candidate in a (k, n, n) bool array (any size)."""
    k, n, _ = candidates.shape
    total = np.zeros(k, dtype=np.int64)
    for a in (candidates, candidates.transpose(0, 2, 1)):
        eq = a[:, :, 1:] == a[:, :, :-1]
        five = eq[:, :, :-3] & eq[:, :, 1:-2] & eq[:, :, 2:-1] & eq[:, :, 3:]
        total += five.sum(axis=(1, 2))
        total += 2 * (five[:, :, 0].sum(axis=1) + (five[:, :, 1:] & ~eq[:, :, : n - 5]).sum(axis=(1, 2)))
        p = np.zeros((k, n, n + 8), dtype=bool)
        p[:, :, 4 : n + 4] = a
        m = n + 8 - 14
        core = p[:, :, 4 : 4 + m] & p[:, :, 6 : 6 + m] & p[:, :, 7 : 7 + m] & p[:, :, 8 : 8 + m]
        core &= p[:, :, 10 : 10 + m] & ~p[:, :, 5 : 5 + m] & ~p[:, :, 9 : 9 + m]
        before = ~(p[:, :, 0:m] | p[:, :, 1 : 1 + m] | p[:, :, 2 : 2 + m] | p[:, :, 3 : 3 + m])
        after = ~(p[:, :, 11 : 11 + m] | p[:, :, 12 : 12 + m] | p[:, :, 13 : 13 + m] | p[:, :, 14 : 14 + m])
        total += 40 * (core & (before | after)).sum(axis=(1, 2))
    top = candidates[:, :-1, :-1]
    same = (top == candidates[:, 1:, :-1]) & (top == candidates[:, :-1, 1:]) & (top == candidates[:, 1:, 1:])
    total += 3 * same.sum(axis=(1, 2))
    dark = candidates.sum(axis=(1, 2))
    total += 10 * (np.abs(dark * 20 - n * n * 10) // (n * n))
    return total


def read_format(matrix: np.ndarray) -> tuple[str, int]:
    """(error level, mask) from the first copy of a symbol's format information."""
    cells = [(k, 8) for k in range(6)] + [(7, 8), (8, 8), (8, 7)] + [(8, 14 - k) for k in range(9, 15)]
    bits = sum(int(matrix[r, c]) << k for k, (r, c) in enumerate(cells)) ^ 0x5412
    level = {v: k for k, v in _FORMAT_ECL_BITS.items()}[bits >> 13]
    return level, bits >> 10 & 7


# --------------------------------------------------------------------------------------------
# Drawing: the dark modules as rectangles.


def rectangles(symbols: np.ndarray) -> list[np.ndarray]:
    """Per symbol of a (N, n, n) bool array, (R, 4) int arrays of rectangles (x, top, w, h) covering
    exactly its dark modules: horizontal runs, merged down the rows where a run repeats unchanged."""
    rects, bounds = rectangle_runs(symbols)
    return [rects[bounds[i] : bounds[i + 1]] for i in range(symbols.shape[0])]


def rectangle_runs(symbols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rectangles of :func:`rectangles` for all symbols as one (R, 4) array, and the (N + 1)
    bounds of each symbol's rows in it."""
    count, rows, n = symbols.shape
    padded = np.zeros((count, rows, n + 2), dtype=np.int8)
    padded[:, :, 1:-1] = symbols
    edges = np.diff(padded, axis=2).ravel()  # (count, rows, n + 1)
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)  # each run's end follows its start
    line, x = np.divmod(starts, n + 1)
    s, r = np.divmod(line, rows)
    # Run widths by (symbol, column, row), one light row above and below each column.
    width = np.zeros((count, n, rows + 2), dtype=np.int16)
    width[s, x, r + 1] = ends - starts
    inner = width[:, :, 1:-1]
    head = np.flatnonzero(((inner != width[:, :, :-2]) & (inner > 0)).ravel())
    tail = np.flatnonzero(((inner != width[:, :, 2:]) & (inner > 0)).ravel())
    column, top = np.divmod(head, rows)  # symbol-major, then column, then row: heads pair with tails
    symbol, x = np.divmod(column, n)
    rects = np.stack([x, top, inner.reshape(-1)[head], tail - head + 1], axis=1)
    return rects, np.searchsorted(symbol, np.arange(count + 1))
