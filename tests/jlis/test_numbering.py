"""J-LIS number generation (番号法8条2項): bijectivity, scalar == batch, validity, versions, keys."""

from __future__ import annotations

import numpy as np
import pytest

from kojinbango.domain.identifiers import (
    my_number_check_digits_np,
    resident_code_check_digit,
    validate_my_number,
    validate_resident_code,
)
from kojinbango.jlis.numbering import TILE, NumberGenerator

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


@pytest.fixture(scope="module")
def gen() -> NumberGenerator:
    return NumberGenerator(KEY)


def _code(base: int) -> str:
    b = f"{base:010d}"
    return f"{b}{resident_code_check_digit(b)}"


@pytest.fixture(scope="module")
def bases() -> np.ndarray:
    rng = np.random.default_rng(20251126)
    return rng.integers(0, 10**10, 1_000_000, dtype=np.int64)


@pytest.fixture(scope="module")
def batch(gen: NumberGenerator, bases: np.ndarray) -> np.ndarray:
    return gen.my_numbers_batch(bases)


def test_known_answers(gen: NumberGenerator) -> None:
    # Pins the algorithm (HKDF labels, block layout, rounds, reduction): a change here changes
    # every number J-LIS would ever issue.
    assert gen.my_number(_code(0)) == KAT_NUMBERS[0]
    assert gen.my_number(_code(1234567890)) == KAT_NUMBERS[1]
    assert gen.my_number(_code(9999999999), 9) == KAT_NUMBERS[2]
    assert [gen.resident_code(s) for s in (0, 1, 9_999_999_999)] == KAT_CODES


KAT_NUMBERS = ["602103643937", "283812422687", "264476347278"]
KAT_CODES = ["50474435986", "29858264136", "21264259042"]


def _reference_base(master: bytes, info: bytes, tag: bytes, u: int, v: int, x: int) -> int:
    """The permutation exactly as the module docstring specifies it, written independently."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    key = HKDF(hashes.SHA256(), 32, b"kojinbango/jlis/numbering", info).derive(master)

    def f(i: int, h: int, m: int) -> int:
        block = tag + ((i << 56) | h).to_bytes(8, "little")
        enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        y = int.from_bytes((enc.update(block) + enc.finalize())[:8], "little")
        return (y % 2**63) % 10**m

    a, b = x // 10**v, x % 10**v
    for i in range(10):
        if i % 2 == 0:
            a = (a + f(i, b, u)) % 10**u
        else:
            b = (b + f(i, a, v)) % 10**v
    return a * 10**v + b


def test_matches_the_documented_construction(gen: NumberGenerator) -> None:
    from kojinbango.domain.identifiers import my_number_check_digit

    info = b"kojinbango/jlis/my-number-permutation/v1"
    for cb, ver in ((0, 0), (1234567890, 0), (9999999999, 9), (4242424242, 3)):
        base = f"{_reference_base(KEY, info, b'KJB-MN01', 5, 6, ver * 10**10 + cb):011d}"
        assert gen.my_number(_code(cb), ver) == base + str(my_number_check_digit(base))
    info = b"kojinbango/jlis/resident-code-permutation/v1"
    for serial in (0, 1, 77_777, 9_999_999_999):
        base = f"{_reference_base(KEY, info, b'KJB-RC01', 5, 5, serial):010d}"
        assert gen.resident_code(serial) == base + str(resident_code_check_digit(base))


def test_scalar_equals_batch(gen: NumberGenerator, bases: np.ndarray, batch: np.ndarray) -> None:
    idx = np.random.default_rng(1).choice(bases.shape[0], 300, replace=False)
    for i in idx.tolist():
        assert gen.my_number(_code(int(bases[i]))) == f"{int(batch[i]):012d}"


def test_scalar_equals_batch_with_version_array(gen: NumberGenerator) -> None:
    rng = np.random.default_rng(2)
    cb = rng.integers(0, 10**10, 5000, dtype=np.int64)
    ver = rng.integers(0, NumberGenerator.MAX_VERSION + 1, 5000)
    out = gen.my_numbers_batch(cb, ver)
    for i in range(0, 5000, 17):
        assert gen.my_number(_code(int(cb[i])), int(ver[i])) == f"{int(out[i]):012d}"
    # an int version equals the same version given per row
    assert np.array_equal(gen.my_numbers_batch(cb, 3), gen.my_numbers_batch(cb, np.full(5000, 3)))


def test_threads_do_not_change_results(gen: NumberGenerator, bases: np.ndarray, batch: np.ndarray) -> None:
    part = bases[: 5 * TILE + 123]
    single = gen.my_numbers_batch(part, workers=1)
    assert np.array_equal(single, gen.my_numbers_batch(part, workers=3))
    assert np.array_equal(single, batch[: part.shape[0]])


def test_no_collisions_in_a_million(bases: np.ndarray, batch: np.ndarray) -> None:
    distinct_inputs = np.unique(bases).shape[0]
    assert np.unique(batch).shape[0] == distinct_inputs
    # equal inputs give equal outputs (a function), so collisions can only come from equal inputs
    assert distinct_inputs > 999_000


def test_inverse_round_trips(gen: NumberGenerator, bases: np.ndarray, batch: np.ndarray) -> None:
    # whole batch, vectorised inverse
    x = gen._numbers.inverse_array((batch // 10).astype(np.uint64))
    assert np.array_equal(x, bases.astype(np.uint64))
    # scalar inverse, also across versions and at the domain edges
    for cb in (0, 1, 9_999_999_999, *bases[:50].tolist()):
        for v in (0, 1, 9):
            number = gen.my_number(_code(cb), v)
            assert gen._invert_base(int(number[:11])) == (cb, v)


def test_small_domain_is_a_permutation() -> None:
    # Exhaustive on a toy domain built the same way (2 + 3 digits) — the Feistel is a bijection
    # for any round function, which this checks end to end including the batch code.
    from kojinbango.jlis.numbering import _Feistel, _Workspace

    f = _Feistel(bytes(32), 12345, 2, 3)
    x = np.arange(10**5, dtype=np.uint64)
    a, b = f.forward_tile(x[:TILE], _Workspace(TILE))
    first = a * np.uint64(1000) + b
    a, b = f.forward_tile(x[TILE:], _Workspace(TILE))
    y = np.concatenate([first, a * np.uint64(1000) + b])
    assert np.array_equal(np.sort(y), x)
    assert [f.forward(int(v)) for v in x[:2000].tolist()] == y[:2000].tolist()
    assert np.array_equal(f.inverse_array(y), x)


def test_all_outputs_are_valid_my_numbers(batch: np.ndarray) -> None:
    assert int(batch.min()) >= 0 and int(batch.max()) < 10**12
    assert np.array_equal(batch % 10, my_number_check_digits_np(batch // 10))
    for v in batch[::997].tolist():
        s = f"{v:012d}"
        assert validate_my_number(s) == s


def test_versions_give_distinct_numbers(gen: NumberGenerator, bases: np.ndarray) -> None:
    code = _code(int(bases[0]))
    numbers = [gen.my_number(code, v) for v in range(NumberGenerator.MAX_VERSION + 1)]
    assert len(set(numbers)) == len(numbers)
    cb = bases[:100_000]
    v0 = gen.my_numbers_batch(cb, 0)
    v1 = gen.my_numbers_batch(cb, 1)
    assert not np.any(v0 == v1)
    # a changed number never equals any number ever issued: disjoint from all version-0 numbers
    assert np.intersect1d(v0, v1).shape[0] == 0


def test_different_keys_different_mappings(
    gen: NumberGenerator, bases: np.ndarray, batch: np.ndarray
) -> None:
    other = NumberGenerator(OTHER_KEY).my_numbers_batch(bases[:100_000])
    same = np.count_nonzero(other == batch[:100_000])
    assert same < 5  # ~1e-6 expected by chance
    assert NumberGenerator(OTHER_KEY).resident_code(7) != gen.resident_code(7)


def test_numbers_do_not_follow_the_code(batch: np.ndarray, bases: np.ndarray) -> None:
    # 8条2項三号: no visible regularity. Neighbouring codes give unrelated numbers, and the
    # order of codes says nothing about the order of numbers.
    cb = np.arange(10**9, 10**9 + 10_000, dtype=np.int64)
    out = NumberGenerator(KEY).my_numbers_batch(cb)
    assert np.count_nonzero(np.abs(np.diff(out)) < 10**8) < 50
    rho = np.corrcoef(np.argsort(np.argsort(bases[:100_000])), np.argsort(np.argsort(batch[:100_000])))[0, 1]
    assert abs(rho) < 0.02


def test_resident_codes_valid_unique_and_match_scalar(gen: NumberGenerator) -> None:
    start = 5_000_000
    codes = gen.resident_codes_batch(start, 300_000)
    assert np.unique(codes).shape[0] == codes.shape[0]
    for i in range(0, 300_000, 4999):
        s = gen.resident_code(start + i)
        assert s == f"{int(codes[i]):011d}"
        assert validate_resident_code(s) == s
        assert gen._invert_code(int(s[:10])) == start + i
    assert gen.resident_codes_batch(0, 3).tolist() == [int(gen.resident_code(i)) for i in range(3)]
    assert gen.resident_codes_batch(10**10 - 2, 2).shape == (2,)


def test_resident_codes_hide_the_serial_order(gen: NumberGenerator) -> None:
    codes = gen.resident_codes_batch(0, 100_000)
    steps = np.diff(codes)
    assert np.count_nonzero(np.abs(steps) <= 10) == 0  # consecutive serials are not consecutive codes
    assert 0.4 < np.count_nonzero(steps > 0) / steps.shape[0] < 0.6  # up or down at random
    rho = np.corrcoef(np.arange(codes.shape[0]), np.argsort(np.argsort(codes)))[0, 1]
    assert abs(rho) < 0.02
    # the check digits are spread like those of random codes (0 twice as common, 12 %+ vs ~9 %)
    digits = np.bincount(codes % 10, minlength=10) / codes.shape[0]
    assert 0.15 < digits[0] < 0.21 and all(0.07 < d < 0.11 for d in digits[1:])


def test_bad_inputs_are_rejected_without_echo(gen: NumberGenerator) -> None:
    good = _code(1234567890)
    bad_check = good[:10] + str((int(good[10]) + 1) % 10)
    for bad in (bad_check, good[:10], good + "0", "1234567890a"):
        with pytest.raises(ValueError) as err:
            gen.my_number(bad)
        assert not any(ch.isdigit() for ch in str(err.value))
    with pytest.raises(ValueError):
        gen.my_number(good, NumberGenerator.MAX_VERSION + 1)
    with pytest.raises(ValueError):
        gen.my_number(good, -1)
    with pytest.raises(ValueError):
        gen.my_numbers_batch(np.array([10**10]))
    with pytest.raises(ValueError):
        gen.my_numbers_batch(np.array([-1]))
    with pytest.raises(ValueError):
        gen.my_numbers_batch(np.array([1, 2]), np.array([0, 10]))
    with pytest.raises(ValueError):
        gen.my_numbers_batch(np.array([1.5]))
    with pytest.raises(ValueError):
        gen.resident_code(10**10)
    with pytest.raises(ValueError):
        gen.resident_codes_batch(10**10 - 1, 2)
    with pytest.raises(ValueError):
        NumberGenerator(b"short")
    assert gen.my_numbers_batch(np.array([], dtype=np.int64)).shape == (0,)
    assert "0x" not in repr(gen) and KEY.hex() not in repr(gen)


# --- the compiled kernels of the batch path: exact arithmetic at the edges ---------------------


def _edge_words(m: int) -> list[int]:
    """AES output words that stress the float64 reduction: extremes and values next to
    multiples of ``m`` (after the mod 2**63 reduction), where a quotient off by one would show."""
    words = [0, 1, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1, 2**62 + 12345]
    for q in (1, 7, 2**31, (2**63 - 1) // m, (2**63 - 1) // m - 1, 2**40 + 3):
        for d in (-1, 0, 1):
            v = q * m + d
            if 0 <= v < 2**63:
                words += [v, v + 2**63]
    return words


@pytest.mark.parametrize("m", [1, 7, 100, 1000, 10**5, 10**6, 2**21])
def test_round_kernel_reduces_exactly(m: int) -> None:
    from kojinbango.jlis.numbering import _kernels

    rng = np.random.default_rng(m)
    words = _edge_words(m) + [int(w) for w in rng.integers(0, 2**63, 2000, dtype=np.int64)]
    words += [w + 2**63 for w in words[-1000:]]
    n = len(words)
    halves = [m - 1, 0, m // 2] + [int(h) for h in rng.integers(0, m, n - 3)]
    out = np.zeros(2 * n, dtype=np.uint64)
    out[0::2] = np.array(words, dtype=np.uint64)
    blocks = np.zeros(2 * n, dtype=np.uint64)
    dst = np.array(halves, dtype=np.uint64)
    tag, nxt = 0x0123456789ABCDEF, 3 << 56
    _kernels().round(
        out,
        blocks,
        dst,
        np.uint64(tag),
        np.uint64(nxt),
        np.int64(m),
        np.int64((1 << 32) % m),
        np.float64(1 / m),
    )
    want = [((w % 2**63) + h) % m for w, h in zip(words, halves, strict=True)]
    assert dst.tolist() == want
    assert blocks[0::2].tolist() == [tag] * n
    assert blocks[1::2].tolist() == [nxt | d for d in want]


@pytest.mark.parametrize("mv", [1000, 10**5, 10**6])
def test_split_and_finish_kernels_are_exact(mv: int) -> None:
    from kojinbango.domain.identifiers import (
        _my_number_check_tables,
        _resident_code_check_tables,
        resident_code_check_digits_np,
    )
    from kojinbango.jlis.numbering import _kernels

    k = _kernels()
    top = 10**11 if mv == 10**6 else 10**10
    edges = [0, 1, top - 1, 2**32, 2**33 + 1] + [q * mv + d for q in (1, 99_999, 12_345) for d in (-1, 0, 1)]
    x = np.array([v for v in edges if 0 <= v < top], dtype=np.uint64)
    x = np.concatenate(
        [x, np.random.default_rng(mv).integers(0, top, 5000, dtype=np.int64).astype(np.uint64)]
    )
    n = x.shape[0]
    for offset in (0, 7):
        xo = x[x < top - offset]
        a, b = np.empty_like(xo), np.empty_like(xo)
        blocks = np.zeros(2 * xo.shape[0], dtype=np.uint64)
        k.split(xo, np.uint64(offset), blocks, a, b, np.uint64(42), np.int64(mv), np.float64(1 / mv))
        assert a.tolist() == [(int(v) + offset) // mv for v in xo.tolist()]
        assert b.tolist() == [(int(v) + offset) % mv for v in xo.tolist()]
        assert blocks[0::2].tolist() == [42] * xo.shape[0] and blocks[1::2].tolist() == b.tolist()
    if mv == 1000:
        return
    a, b = x // np.uint64(mv), x % np.uint64(mv)
    out = np.empty(n, dtype=np.int64)
    if mv == 10**6:
        k.finish(a, b, np.uint64(mv), *_my_number_check_tables(), out)
        check = my_number_check_digits_np(x.view(np.int64))
    else:
        k.finish(a, b, np.uint64(mv), *_resident_code_check_tables(), out)
        check = resident_code_check_digits_np(x.view(np.int64))
    assert np.array_equal(out, x.view(np.int64) * 10 + check)


def test_batch_accepts_any_integer_layout(gen: NumberGenerator, bases: np.ndarray, batch: np.ndarray) -> None:
    strided = bases[: 2 * TILE : 2]
    assert np.array_equal(gen.my_numbers_batch(strided), batch[: 2 * TILE : 2])
    readonly = bases[:1000].copy()
    readonly.flags.writeable = False
    assert np.array_equal(gen.my_numbers_batch(readonly), batch[:1000])
    small = bases[:1000][bases[:1000] < 2**32].astype(np.uint32)
    assert np.array_equal(gen.my_numbers_batch(small), gen.my_numbers_batch(small.astype(np.int64)))


def test_batch_kernels_refuse_halves_they_cannot_reduce_exactly() -> None:
    from kojinbango.jlis.numbering import _Feistel, _Workspace

    with pytest.raises(ValueError):
        _Feistel(bytes(32), 1, 4, 7).forward_tile(np.zeros(4, dtype=np.uint64), _Workspace(4))
