"""Batch QR encoder: bit-for-bit equal to segno for the same version, level and mask; ISO mask penalty."""

from __future__ import annotations

import random
import shutil
import string
import subprocess
from pathlib import Path

import numpy as np
import pytest
import segno
from segno import consts

from kojinbango.documents import qr

APPLY_URL = "https://kojinbango.example/apply?id="
LEVELS = {
    "L": consts.ERROR_LEVEL_L,
    "M": consts.ERROR_LEVEL_M,
    "Q": consts.ERROR_LEVEL_Q,
    "H": consts.ERROR_LEVEL_H,
}


def _segno(payload: str, mask: int, error: str = "m") -> segno.QRCode:
    return segno.make(payload, error=error, micro=False, mask=mask)


def _application_ids(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.randrange(10**23):023d}" for _ in range(count)]


def test_block_tables_match_segno() -> None:
    for level, constant in LEVELS.items():
        for version in range(1, 41):
            infos = consts.ECC[version][constant]
            assert sum(info.num_blocks for info in infos) == qr._BLOCKS[level][version - 1]
            assert infos[0].num_total - infos[0].num_data == qr._ECC_PER_BLOCK[level][version - 1]
            assert consts.SYMBOL_CAPACITY[version][constant] == 8 * qr._data_codewords(version, level)


def test_function_patterns_match_segno() -> None:
    for version in range(1, 41):
        code = segno.make("A", version=version, error="l", mask=0, boost_error=False)
        region = qr._function_region(version)
        expected = np.array(code.matrix, dtype=bool) & region
        assert np.array_equal(qr._layout(version, "L").templates[0], expected), version


def test_run_of_application_urls_is_segno_bit_for_bit() -> None:
    payloads = [APPLY_URL + application_id for application_id in _application_ids(300, 11)]
    symbols = qr.encode(payloads)
    masks = set()
    for payload, symbol in zip(payloads, symbols, strict=True):
        level, mask = qr.read_format(symbol)
        masks.add(mask)
        expected = _segno(payload, mask)
        assert (expected.version, expected.error) == (4, "M")
        assert level == "M"
        assert np.array_equal(symbol, np.array(expected.matrix, dtype=bool)), payload
    assert len(masks) >= 4  # the mask really is chosen per symbol


def test_forced_masks_are_segno_bit_for_bit() -> None:
    payloads = [APPLY_URL + application_id for application_id in _application_ids(20, 12)]
    for mask in range(8):
        for payload, symbol in zip(payloads, qr.encode(payloads, mask=mask), strict=True):
            assert np.array_equal(symbol, np.array(_segno(payload, mask).matrix, dtype=bool))


@pytest.mark.parametrize(
    "alphabet",
    [
        string.digits,  # numeric mode
        "0123456789ABCDEFXYZ $%*+-./:",  # alphanumeric mode
        string.ascii_letters + string.digits + "/:?=&",  # byte mode, ISO-8859-1
        "漢字日本語東京都千代田区",  # kanji mode (Shift_JIS pairs)
        "é漢字abc😀",  # byte mode, UTF-8
    ],
)
def test_all_modes_and_lengths_match_segno(alphabet: str) -> None:
    rng = random.Random(alphabet)
    lengths = [*range(1, 60), 61, 62, 63, 64, 100, 150, 200, 333]
    payloads = ["".join(rng.choice(alphabet) for _ in range(length)) for length in lengths]
    for payload, symbol in zip(payloads, qr.encode(payloads), strict=True):  # mixed lengths in one call
        level, mask = qr.read_format(symbol)
        expected = _segno(payload, mask)
        assert level == expected.error.upper()
        assert np.array_equal(symbol, np.array(expected.matrix, dtype=bool)), (len(payload), mask)


@pytest.mark.parametrize("error", ["l", "q", "h"])
def test_error_levels_match_segno(error: str) -> None:
    rng = random.Random(error)
    for length in (3, 17, 40, 90, 180):
        payload = "".join(rng.choice(string.ascii_lowercase) for _ in range(length))
        symbol = qr.encode_one(payload, error)
        level, mask = qr.read_format(symbol)
        expected = _segno(payload, mask, error)
        assert level == expected.error.upper()
        assert np.array_equal(symbol, np.array(expected.matrix, dtype=bool))


def test_reed_solomon_known_vector() -> None:
    # ISO/IEC 18004 Annex I example: "01234567" at 1-M.
    data = np.array(
        [[0x10, 0x20, 0x0C, 0x56, 0x61, 0x80, 0xEC, 0x11, 0xEC, 0x11, 0xEC, 0x11, 0xEC, 0x11, 0xEC, 0x11]]
    )
    ecc = qr.reed_solomon(data.astype(np.uint8), qr._generator_table(10))
    assert ecc.tolist() == [[0xA5, 0x24, 0xD4, 0xC1, 0xED, 0x36, 0xC7, 0x87, 0x2C, 0x55]]


def _reference_penalty(matrix: np.ndarray) -> int:
    """ISO/IEC 18004 §7.8.3 scored module by module (independent of the vectorised scorers)."""
    n = matrix.shape[0]
    score = 0
    for line in [*matrix.astype(int).tolist(), *matrix.T.astype(int).tolist()]:
        run = 1
        for j in range(1, n + 1):
            if j < n and line[j] == line[j - 1]:
                run += 1
                continue
            if run >= 5:
                score += run - 2
            run = 1
        padded = [0] * 4 + line + [0] * 4
        for start in range(4, n + 4 - 6):
            if padded[start : start + 7] == [1, 0, 1, 1, 1, 0, 1] and (
                padded[start - 4 : start] == [0] * 4 or padded[start + 7 : start + 11] == [0] * 4
            ):
                score += 40
    blocks = matrix[:-1, :-1] == matrix[1:, :-1]
    blocks &= matrix[:-1, :-1] == matrix[:-1, 1:]
    blocks &= matrix[:-1, :-1] == matrix[1:, 1:]
    score += 3 * int(blocks.sum())
    score += 10 * (abs(int(matrix.sum()) * 20 - n * n * 10) // (n * n))
    return score


def test_mask_penalties_follow_the_standard() -> None:
    payloads = [APPLY_URL + application_id for application_id in _application_ids(6, 13)]
    layout = qr._layout(4, "M")
    codewords = qr.data_codewords([p.encode() for p in payloads], qr.MODE_BYTE, layout)
    unmasked = qr._unmasked(qr.final_message(codewords, layout), layout)
    packed = qr.mask_penalties(unmasked, layout)
    for i in range(len(payloads)):
        candidates = unmasked[i] ^ layout.masks | layout.templates
        assert packed[i].tolist() == qr._penalties(candidates).tolist()
        assert packed[i].tolist() == [_reference_penalty(c) for c in candidates]
    chosen = qr.encode(payloads)
    assert [qr.read_format(s)[1] for s in chosen] == np.argmin(packed, axis=1).tolist()


def test_large_versions_use_the_array_scorer() -> None:
    payload = "".join(random.Random(5).choice(string.ascii_lowercase) for _ in range(400))  # version 14
    symbol = qr.encode_one(payload)
    level, mask = qr.read_format(symbol)
    expected = _segno(payload, mask)
    assert expected.version > 9
    assert np.array_equal(symbol, np.array(expected.matrix, dtype=bool))


def test_rectangles_cover_exactly_the_dark_modules() -> None:
    payloads = [APPLY_URL + application_id for application_id in _application_ids(40, 14)]
    symbols = np.stack(qr.encode(payloads))
    for symbol, rects in zip(symbols, qr.rectangles(symbols), strict=True):
        grid = np.zeros(symbol.shape, dtype=int)
        for x, top, w, h in rects.tolist():
            grid[top : top + h, x : x + w] += 1
        assert np.array_equal(grid, symbol.astype(int))
        assert len(rects) < int(symbol.sum()) // 2


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        qr.encode([""])
    with pytest.raises(ValueError, match="too long"):
        qr.encode(["x" * 3000])
    with pytest.raises(ValueError, match="mask"):
        qr.encode(["x"], mask=8)


@pytest.mark.skipif(not shutil.which("zbarimg"), reason="zbar-tools")
def test_symbols_decode_with_zbar(tmp_path: Path) -> None:
    payloads = [APPLY_URL + application_id for application_id in _application_ids(3, 15)]
    for i, symbol in enumerate(qr.encode(payloads)):
        image = np.pad(~symbol, 4, constant_values=True).repeat(6, axis=0).repeat(6, axis=1)
        path = tmp_path / f"{i}.pgm"
        height, width = image.shape
        path.write_bytes(f"P5 {width} {height} 255\n".encode() + (image * 255).astype(np.uint8).tobytes())
        result = subprocess.run(
            ["zbarimg", "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", str(path)],
            capture_output=True,
            text=True,
            check=True,
        )
        assert result.stdout.strip() == payloads[i]
