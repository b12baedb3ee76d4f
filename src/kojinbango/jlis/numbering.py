"""J-LIS's generation of 個人番号とすべき番号 (番号法8条2項) and of 住民票コード stock.

Pure computation (numpy + cryptography, and numba for the batch path); no database, no files.

How a number is made
====================
A 住民票コード is 10 random digits + 1 check digit. J-LIS turns the 10 digits ``c`` and a
*version* ``v`` (0 for a person's first number; 1, 2, … for each 個人番号の変更 under 番号法7条2項
made with the same code) into ``x = v * 10**10 + c`` in ``[0, 10**11)`` and applies a keyed
format-preserving permutation ``P_K`` of ``[0, 10**11)``. The 11-digit result is the base of the
個人番号; the 12th digit is the statutory check digit (総務省令第85号5条).

The three conditions of 番号法8条2項 hold by construction:

一 unique, also against every former number: ``P_K`` is a bijection and two issuances never share
   an input ``x`` (a change bumps the version, a new person has a new code), so no two numbers
   ever issued are equal — no lookup needed.
二 obtained by converting the 住民票コード: ``x`` is the code (plus the version).
三 no regularity that lets the code be restored: ``P_K`` is a Feistel cipher with AES-256 round
   functions keyed by J-LIS's secret; without the key it can neither be inverted nor predicted.

The permutation
---------------
An alternating (unbalanced) Feistel network in radix 10 like NIST SP 800-38G FF1: the value
``x`` is split into a high half ``a = x // 10**6`` (u = 5 digits) and a low half
``b = x % 10**6`` (v = 6 digits). Round ``i`` (``i = 0 … ROUNDS-1``):

* even ``i``: ``a = (a + F_i(b)) mod 10**5``
* odd ``i``:  ``b = (b + F_i(a)) mod 10**6``

and the result is ``a * 10**6 + b``. Each round is invertible (subtract instead of add), so
the whole network is a bijection for *any* round functions; no cycle-walking is needed because
the Feistel domain is exactly ``[0, 10**11)``.

Round function ``F_i(h)`` over the other half ``h``: one AES-256 (ECB, i.e. the raw block
cipher) encryption of the 16-byte block::

    bytes 0..7   little-endian uint64  domain tag (which permutation; fixed ASCII constant)
    bytes 8..15  little-endian uint64  (i << 56) | h          (round index, the other half)

The first 8 output bytes are read as a little-endian uint64 ``y``; ``F_i(h) = (y mod 2**63) mod 10**m``
where ``m`` is the width of the half being updated (FF1 likewise reduces 8 PRF bytes). Keeping 63
bits means ``(y mod 2**63) + half`` never overflows uint64, so one reduction does the modular
addition; the bias of reducing 63 random bits mod ``10**6`` is below 2**-43, i.e. negligible.

Why 10 rounds: FF1 uses 10 and FF3-1 uses 8. Here every citizen knows one plaintext/ciphertext
pair (their own 住民票コード and 個人番号) and leaked registers give millions, so the design must
resist known-plaintext attacks on a smallish domain (~2**36.5, halves of 10**5 and 10**6). The
published attacks on FF3 exploited its tweak schedule and 8 rounds; the generic attacks on
small-domain Feistel networks (Bellare–Hoang–Tessaro 2016, Hoang–Tessaro–Trieu 2018) lose power
exponentially in the number of rounds. We take FF1's 10 rounds — the more conservative of the two
NIST choices — since the cost is irrelevant here (125 M numbers take a few seconds).

Why AES-256: the master key is 32 bytes and a My Number lives for a person's lifetime (100 years
and more); AES-256 gives margin (including against Grover-type speed-ups) at ~35 % more AES time.

Keys: a 32-byte master key; HKDF-SHA256 derives independent 32-byte subkeys for the number
permutation and for the 住民票コード permutation (separate ``info`` labels), and the two
permutations also use different domain tags in the block.

住民票コード stock
------------------
J-LIS hands out codes in order of a serial number ``n`` (0, 1, 2, …); the n-th code is
``P'(n)`` (a balanced 5+5-digit Feistel over ``[0, 10**10)``, same construction, separate key)
followed by the check digit. Codes therefore look random and are unique by construction.

The batch path
--------------
``my_numbers_batch`` is meant for whole-country runs. It processes the input in cache-sized
tiles; for each round of a tile all AES input blocks sit in one contiguous buffer that is
encrypted with ONE ``encryptor.update_into`` call. Everything else a round does — reduce the AES
output, update the half, write the next round's blocks — is ONE pass of a small compiled kernel
(numba, ``nogil``), since as a chain of whole-array numpy operations it cost more than the AES
itself. The kernels reduce mod ``10**m`` through a float64 reciprocal with an exact integer
correction (see ``_round_kernel``), which the compiler vectorises, where a 64-bit integer ``%``
cannot be. They are compiled on first use of the batch path and cached on disk
(``cache=True``); the scalar path never imports numba. cryptography releases the GIL during
``update_into`` and the kernels and numpy release it too, so tiles are handed out to ``workers``
threads (the caller plus a persistent pool) one at a time from a shared counter.
"""

from __future__ import annotations

import itertools
import os
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kojinbango.domain.identifiers import (
    _my_number_check_tables,
    _resident_code_check_tables,
    my_number_check_digit,
    resident_code_check_digit,
    validate_resident_code,
)

__all__ = [
    "AES_KEY_BITS",
    "ROUNDS",
    "TILE",
    "NumberGenerator",
    "default_workers",
]

#: Feistel rounds for both permutations (see the module docstring for the choice).
ROUNDS = 10
#: AES key size of the round function.
AES_KEY_BITS = 256
#: Elements per tile in the batch path: the AES buffers are TILE * 16 bytes each. Whole-batch
#: ns/number, one thread, on the 2-core reference machine (Zen 4), with the compiled kernels:
#: 16 Ki 31.5, 32 Ki 30.7, 64 Ki 30.0, 128 Ki 29.9 — smaller tiles pay the ~20 Python-level
#: calls per tile more often; beyond 64 Ki nothing is left to gain.
TILE = 1 << 16

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]

_NUMBER_HALVES = (5, 6)  # [0, 10**11) = 10**5 (high) x 10**6 (low)
_CODE_HALVES = (5, 5)  # [0, 10**10) = 10**5 x 10**5
_NUMBER_TAG = int.from_bytes(b"KJB-MN01", "little")
_CODE_TAG = int.from_bytes(b"KJB-RC01", "little")
_HKDF_SALT = b"kojinbango/jlis/numbering"
_NUMBER_INFO = b"kojinbango/jlis/my-number-permutation/v1"
_CODE_INFO = b"kojinbango/jlis/resident-code-permutation/v1"
_ROUND_SHIFT = 56
_MASK63 = (1 << 63) - 1
_BLOCK = struct.Struct("<QQ")
_WORD = struct.Struct("<Q")
_CODE_SPACE = 10**10
#: Largest half modulus the batch kernels reduce exactly (see ``_round_kernel``).
_KERNEL_MAX_MODULUS = 1 << 21


# ---- compiled kernels of the batch path ----------------------------------------------------
# Plain Python functions over numpy arrays, compiled with numba on first use (``_kernels``).
# Module globals they read are frozen as constants at compile time. Indices are uint64 so that
# numba emits no negative-index wraparound (which would stop the loops from vectorising), and
# every scalar argument is passed as an explicit numpy scalar so that each kernel is compiled
# for exactly one signature.

_K_MASK63 = np.uint64(_MASK63)
_K_LOW32 = np.uint64(0xFFFFFFFF)
_K_32 = np.uint64(32)
_K_1 = np.uint64(1)
_K_2 = np.uint64(2)
_K_SPLIT = np.uint64(10**6)  # the check-digit tables' split (see _finish_kernel)
_K_SPLIT_I = np.int64(10**6)
_K_INV_SPLIT = np.float64(1.0 / 10**6)


def _split_kernel(x: Any, offset: Any, blocks: Any, a: Any, b: Any, tag: Any, mv: Any, inv: Any) -> None:
    """``a, b = divmod(x + offset, mv)`` and the round-0 AES input ``blocks[j] = (tag, b[j])``.

    ``x + offset < 2**53``: ``x * inv`` is then within 1 of ``x / mv`` (``inv = fl(1/mv)``) and
    one correction step makes the quotient exact.
    """
    for j in range(np.uint64(x.shape[0])):
        xi = np.int64(x[j] + offset)
        q = np.int64(np.float64(xi) * inv)
        r = xi - q * mv
        if r < 0:
            r += mv
            q -= 1
        elif r >= mv:
            r -= mv
            q += 1
        a[j] = np.uint64(q)
        b[j] = np.uint64(r)
        k = _K_2 * j
        blocks[k] = tag
        blocks[k + _K_1] = np.uint64(r)


def _round_kernel(out: Any, blocks: Any, dst: Any, tag: Any, nxt: Any, m: Any, c: Any, inv: Any) -> Any:
    """The non-AES part of one Feistel round over a tile, in one pass.

    ``out`` holds the AES output words (two per block), ``dst`` the half being updated. For each
    element: ``y`` = first output word, ``dst = ((y mod 2**63) + dst) mod m``, and the next round's
    input block ``(tag, nxt | dst)`` (``nxt`` = next round index << 56) goes to ``blocks``.

    Exact for ``m <= 2**21``: with ``w = y mod 2**63 = hi * 2**32 + lo`` and ``c = 2**32 mod m``,
    ``s = hi * c + lo + dst`` is congruent to ``w + dst`` mod ``m`` and below
    ``2**31 * 2**21 + 2**33 < 2**53``, so it converts to float64 exactly. ``q = trunc(s * inv)``
    with ``inv = fl(1/m)`` is within 1 of ``s // m`` (relative error below 2**-52 on a value below
    2**53 / m), so ``r = s - q * m`` (int64, exact) lies in ``[-m, 2m)`` and one conditional add
    and one conditional subtract give ``s mod m``. Unlike a 64-bit integer ``%``, all of this
    vectorises.

    Returns the XOR of the second output words: unused, but reading them makes every block a
    whole 16-byte load, which the compiler turns into loads + shuffles instead of a (slow)
    gather of every other word. Likewise the tag is rewritten so that the stores are whole blocks.
    """
    junk = np.uint64(0)
    for j in range(np.uint64(dst.shape[0])):
        k = _K_2 * j
        w = out[k] & _K_MASK63
        junk ^= out[k + _K_1]
        si = np.int64(w >> _K_32) * c + np.int64((w & _K_LOW32) + dst[j])
        r = si - np.int64(np.float64(si) * inv) * m
        r = r + m if r < 0 else r
        r = r - m if r >= m else r
        d = np.uint64(r)
        dst[j] = d
        blocks[k] = tag
        blocks[k + _K_1] = nxt | d
    return junk


def _finish_kernel(a: Any, b: Any, mv: Any, low: Any, high: Any, check_of_sum: Any, out: Any) -> None:
    """``out = base * 10 + check digit`` with ``base = a * mv + b`` (int64 ``out``).

    The check digit is ``check_of_sum[low[base % 10**6] + high[base // 10**6]]`` with the tables
    of ``kojinbango.domain.identifiers`` (``_my_number_check_tables`` /
    ``_resident_code_check_tables``), i.e. exactly what its numpy check-digit functions compute.
    When ``mv == 10**6`` the halves are that split already; otherwise the base (< 2**53) is split
    as in ``_split_kernel``.
    """
    for j in range(np.uint64(a.shape[0])):
        base = a[j] * mv + b[j]
        if mv == _K_SPLIT:
            hi = a[j]
            lo = b[j]
        else:
            bi = np.int64(base)
            q = np.int64(np.float64(bi) * _K_INV_SPLIT)
            r = bi - q * _K_SPLIT_I
            if r < 0:
                r += _K_SPLIT_I
                q -= 1
            elif r >= _K_SPLIT_I:
                r -= _K_SPLIT_I
                q += 1
            hi = np.uint64(q)
            lo = np.uint64(r)
        out[j] = np.int64(base) * 10 + check_of_sum[np.int64(low[lo]) + np.int64(high[hi])]


class _Kernels(NamedTuple):
    split: Any
    round: Any
    finish: Any


_KERNELS: _Kernels | None = None
_KERNELS_LOCK = threading.Lock()


def _kernels() -> _Kernels:
    """The compiled kernels (numba is imported and the kernels are jitted on the first call;
    compilation itself happens on their first call, or is loaded from numba's on-disk cache)."""
    global _KERNELS
    with _KERNELS_LOCK:
        if _KERNELS is None:
            from numba import njit

            def jit(fn: Callable[..., Any]) -> Any:
                try:
                    return njit(fn, cache=True, nogil=True, error_model="numpy", boundscheck=False)
                except RuntimeError:  # no writable cache location: compile once per process
                    return njit(fn, nogil=True, error_model="numpy", boundscheck=False)

            _KERNELS = _Kernels(jit(_split_kernel), jit(_round_kernel), jit(_finish_kernel))
        return _KERNELS


def default_workers() -> int:
    """Threads for the batch path: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def _derive(master: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=AES_KEY_BITS // 8, salt=_HKDF_SALT, info=info).derive(
        master
    )


def _encryptor(key: bytes) -> CipherContext:
    return Cipher(algorithms.AES(key), modes.ECB()).encryptor()


class _Workspace:
    """Per-thread reusable buffers for one tile and that thread's AES contexts."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.block_bytes = np.zeros(size * 16, dtype=np.uint8)
        # the blocks as 2 * size little-endian words: (tag, round << 56 | half) per block
        self.block_words = self.block_bytes.view("<u8")
        # update_into wants block_size - 1 spare bytes in the output buffer
        self.out_bytes = np.zeros(size * 16 + 15, dtype=np.uint8)
        self.out_words = self.out_bytes[: size * 16].view("<u8")
        self.block_mv = self.block_bytes.data
        self.out_mv = self.out_bytes.data
        self.x = np.empty(size, dtype=np.uint64)
        self.a = np.empty(size, dtype=np.uint64)
        self.b = np.empty(size, dtype=np.uint64)
        self._enc: dict[bytes, CipherContext] = {}

    def encryptor(self, key: bytes) -> CipherContext:
        # ECB carries no state between whole-block updates, so one context serves every call
        # (a context is not thread-safe, hence one per thread).
        enc = self._enc.get(key)
        if enc is None:
            enc = self._enc[key] = _encryptor(key)
        return enc


@dataclass(frozen=True)
class _Feistel:
    """An alternating radix-10 Feistel permutation of ``[0, 10**(u+v))``."""

    key: bytes
    tag: int
    u: int  # digits of the high half (updated in even rounds)
    v: int  # digits of the low half (updated in odd rounds)
    rounds: int = ROUNDS

    # ---- scalar path: Python ints and struct, independent of the numpy path ----

    def _f(self, enc: CipherContext, i: int, half: int, modulus: int) -> int:
        out = enc.update(_BLOCK.pack(self.tag, (i << _ROUND_SHIFT) | half))
        return (_WORD.unpack_from(out)[0] & _MASK63) % modulus

    def forward(self, x: int) -> int:
        mu, mv = 10**self.u, 10**self.v
        a, b = divmod(x, mv)
        enc = _encryptor(self.key)
        for i in range(self.rounds):
            if i % 2 == 0:
                a = (a + self._f(enc, i, b, mu)) % mu
            else:
                b = (b + self._f(enc, i, a, mv)) % mv
        return a * mv + b

    def inverse(self, y: int) -> int:
        mu, mv = 10**self.u, 10**self.v
        a, b = divmod(y, mv)
        enc = _encryptor(self.key)
        for i in reversed(range(self.rounds)):
            if i % 2 == 0:
                a = (a - self._f(enc, i, b, mu)) % mu
            else:
                b = (b - self._f(enc, i, a, mv)) % mv
        return a * mv + b

    # ---- batch path: one AES call and one kernel pass per round per tile ----

    def forward_tile(self, x: U64, ws: _Workspace, offset: int = 0) -> tuple[U64, U64]:
        """Permute one tile ``x + offset`` (uint64 ``x``, len <= ws.size); returns the halves
        (a, b) as views into the workspace (valid until its next use): the result is
        ``a * 10**v + b``."""
        mu, mv = 10**self.u, 10**self.v
        if max(mu, mv) > _KERNEL_MAX_MODULUS or mu * mv > 1 << 53:
            raise ValueError("the batch kernels support halves of at most 6 digits")
        k = _kernels()
        n = x.shape[0]
        blocks = ws.block_words[: 2 * n]
        out = ws.out_words[: 2 * n]
        blk_bytes = ws.block_mv[: n * 16]
        out_bytes = ws.out_mv[: n * 16 + 15]
        a, b = ws.a[:n], ws.b[:n]
        tag = np.uint64(self.tag)
        k.split(x, np.uint64(offset), blocks, a, b, tag, np.int64(mv), np.float64(1.0 / mv))
        # per half: modulus, 2**32 mod modulus, fl(1/modulus)
        consts = {h: (np.int64(h), np.int64((1 << 32) % h), np.float64(1.0 / h)) for h in (mu, mv)}
        enc = ws.encryptor(self.key)
        for i in range(self.rounds):
            # blocks holds round i's input (tag, i << 56 | the other half) for the whole tile
            enc.update_into(blk_bytes, out_bytes)
            dst, m = (a, mu) if i % 2 == 0 else (b, mv)
            k.round(out, blocks, dst, tag, np.uint64((i + 1) << _ROUND_SHIFT), *consts[m])
        return a, b

    def inverse_array(self, y: U64) -> U64:
        """Vectorised inverse (for tests and audits; not tiled, not threaded)."""
        n = y.shape[0]
        mu, mv = 10**self.u, 10**self.v
        a, b = np.divmod(y.astype(np.uint64), np.uint64(mv))
        blocks = np.zeros((n, 2), dtype="<u8")
        blocks[:, 0] = self.tag
        enc = _encryptor(self.key)
        for i in reversed(range(self.rounds)):
            src, dst, m = (b, a, mu) if i % 2 == 0 else (a, b, mv)
            blocks[:, 1] = src | np.uint64(i << _ROUND_SHIFT)
            out = np.frombuffer(enc.update(blocks.tobytes()), dtype="<u8").reshape(n, 2)
            f = (out[:, 0] & np.uint64(_MASK63)) % np.uint64(m)
            dst[...] = (dst + np.uint64(m) - f) % np.uint64(m)
        return a * np.uint64(mv) + b


class NumberGenerator:
    """J-LIS's generator of 個人番号とすべき番号 and of 住民票コード stock.

    ``key`` is J-LIS's 32-byte master secret. Instances are thread-safe.
    """

    MAX_VERSION: int = 9

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes | bytearray) or len(key) != 32:
            raise ValueError("key must be 32 bytes")
        master = bytes(key)
        self._numbers = _Feistel(_derive(master, _NUMBER_INFO), _NUMBER_TAG, *_NUMBER_HALVES)
        self._codes = _Feistel(_derive(master, _CODE_INFO), _CODE_TAG, *_CODE_HALVES)
        self._local = threading.local()

    def __repr__(self) -> str:  # never show key material
        return f"{type(self).__name__}(rounds={ROUNDS}, aes={AES_KEY_BITS})"

    # ------------------------------------------------------------------ scalar API

    def my_number(self, resident_code: str, version: int = 0) -> str:
        """The 12-digit 個人番号 for ``resident_code`` (11 digits) at ``version`` (0 = first).

        Raises ``IdentifierError`` (a ValueError that never contains the digits) for a malformed
        code and ValueError for a version outside ``[0, MAX_VERSION]``.
        """
        code = validate_resident_code(resident_code)
        self._check_version(version)
        base = self._numbers.forward(version * _CODE_SPACE + int(code[:10]))
        base_str = f"{base:011d}"
        return f"{base_str}{my_number_check_digit(base_str)}"

    def resident_code(self, serial: int) -> str:
        """The ``serial``-th 住民票コード J-LIS hands out (11 digits including the check digit)."""
        if isinstance(serial, bool) or not isinstance(serial, int | np.integer):
            raise ValueError("serial must be an int")
        if not 0 <= int(serial) < _CODE_SPACE:
            raise ValueError("serial must be in [0, 10**10)")
        base_str = f"{self._codes.forward(int(serial)):010d}"
        return f"{base_str}{resident_code_check_digit(base_str)}"

    def _check_version(self, version: object) -> int:
        if isinstance(version, bool) or not isinstance(version, int | np.integer):
            raise ValueError("version must be an int")
        if not 0 <= int(version) <= self.MAX_VERSION:
            raise ValueError(f"version must be in [0, {self.MAX_VERSION}]")
        return int(version)

    def _invert_base(self, base: int) -> tuple[int, int]:
        """(code base, version) of an 11-digit number base. Needs the key; for tests."""
        version, code_base = divmod(self._numbers.inverse(base), _CODE_SPACE)
        return code_base, version

    def _invert_code(self, code_base: int) -> int:
        """Serial of a 10-digit code base. Needs the key; for tests."""
        return self._codes.inverse(code_base)

    # ------------------------------------------------------------------ batch API

    def my_numbers_batch(
        self,
        code_bases: np.ndarray,
        versions: np.ndarray | int = 0,
        *,
        workers: int | None = None,
    ) -> np.ndarray:
        """12-digit 個人番号 (int64: base * 10 + check digit) for many codes at once.

        ``code_bases`` are the 10 random digits of each 住民票コード (integers without the check
        digit); ``versions`` is one int for all or an integer array of the same length.
        ``workers`` threads share the tiles (default: the usable CPUs).
        """
        cb = np.asarray(code_bases)
        if cb.ndim != 1 or cb.dtype.kind not in "iu":
            raise ValueError("code_bases must be a 1-D integer array")
        n = cb.shape[0]
        if n and (int(cb.min()) < 0 or int(cb.max()) >= _CODE_SPACE):
            raise ValueError("code bases must be in [0, 10**10)")
        # validated non-negative above, so an int64 array can be reinterpreted without a copy
        cb = cb.view(np.uint64) if cb.dtype == np.int64 else cb.astype(np.uint64)
        ver: U64 | None = None
        offset = 0
        if isinstance(versions, int | np.integer) and not isinstance(versions, bool):
            offset = self._check_version(versions) * _CODE_SPACE
        else:
            va = np.asarray(versions)
            if va.shape != cb.shape or va.dtype.kind not in "iu":
                raise ValueError("versions must be an int or an integer array shaped like code_bases")
            if n and (int(va.min()) < 0 or int(va.max()) > self.MAX_VERSION):
                raise ValueError(f"versions must be in [0, {self.MAX_VERSION}]")
            ver = va.astype(np.uint64, copy=False)
        out = np.empty(n, dtype=np.int64)
        space = np.uint64(_CODE_SPACE)
        tables = _my_number_check_tables()

        def tile(ws: _Workspace, s: int, e: int) -> None:
            if ver is not None:
                x = ws.x[: e - s]
                np.multiply(ver[s:e], space, out=x)
                np.add(x, cb[s:e], out=x)
                a, b = self._numbers.forward_tile(x, ws)
            else:
                a, b = self._numbers.forward_tile(cb[s:e], ws, offset)
            _finish(a, b, 10 ** _NUMBER_HALVES[1], tables, out[s:e])

        self._run_tiles(n, tile, workers)
        return out

    def resident_codes_batch(self, start: int, count: int, *, workers: int | None = None) -> np.ndarray:
        """11-digit 住民票コード (int64) for serials ``start … start+count-1``."""
        if isinstance(start, bool) or isinstance(count, bool):
            raise ValueError("start and count must be ints")
        start, count = int(start), int(count)
        if start < 0 or count < 0 or start + count > _CODE_SPACE:
            raise ValueError("serials must lie in [0, 10**10)")
        out = np.empty(count, dtype=np.int64)
        tables = _resident_code_check_tables()

        def tile(ws: _Workspace, s: int, e: int) -> None:
            x = ws.x[: e - s]
            x[:] = np.arange(start + s, start + e, dtype=np.uint64)
            a, b = self._codes.forward_tile(x, ws)
            _finish(a, b, 10 ** _CODE_HALVES[1], tables, out[s:e])

        self._run_tiles(count, tile, workers)
        return out

    def _workspace(self) -> _Workspace:
        ws: _Workspace | None = getattr(self._local, "ws", None)
        if ws is None:
            ws = self._local.ws = _Workspace(TILE)
        return ws

    def _run_tiles(self, n: int, tile: Callable[[_Workspace, int, int], None], workers: int | None) -> None:
        ntiles = -(-n // TILE)
        nw = max(1, min(workers if workers is not None else default_workers(), ntiles))
        # Tiles are handed out one at a time from a shared counter (next() on itertools.count
        # is atomic under the GIL), so a thread whose core is busy with something else simply
        # takes fewer tiles instead of holding up the whole call.
        counter = itertools.count()

        def run() -> None:
            ws = self._workspace()
            while (k := next(counter)) < ntiles:
                s = k * TILE
                tile(ws, s, min(s + TILE, n))

        if nw == 1:
            run()
            return
        # cryptography's update_into and numpy's loops release the GIL, so the threads really run
        # in parallel. The calling thread works too; the pool threads persist, so their
        # workspaces stay allocated and warm between calls.
        futures = [_pool(nw - 1).submit(run) for _ in range(nw - 1)]
        try:
            run()
        finally:
            for f in futures:
                f.result()


_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _pool(size: int) -> ThreadPoolExecutor:
    """A process-wide pool of ``size`` threads for the batch path (created on first use)."""
    with _POOLS_LOCK:
        pool = _POOLS.get(size)
        if pool is None:
            pool = _POOLS[size] = ThreadPoolExecutor(max_workers=size, thread_name_prefix="jlis-numbering")
        return pool


def _finish(a: U64, b: U64, low_space: int, tables: tuple[Any, Any, Any], out: I64) -> None:
    """out = base * 10 + check digit of base, base = a * low_space + b."""
    _kernels().finish(a, b, np.uint64(low_space), *tables, out)
