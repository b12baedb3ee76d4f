"""J-LIS's generation of 個人番号とすべき番号 (番号法8条2項) and of 住民票コード stock.

Pure computation (numpy + cryptography); no database, no files.

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
tiles; for each round of a tile all AES input blocks are built as one contiguous numpy buffer
and encrypted with ONE ``encryptor.update_into`` call; everything else is whole-array numpy
arithmetic (no per-element Python work). cryptography releases the GIL during ``update_into``
and numpy releases it in its loops, so tiles are handed out to ``workers`` threads (the caller
plus a persistent pool) one at a time from a shared counter.
"""

from __future__ import annotations

import itertools
import os
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kojinbango.domain.identifiers import (
    my_number_check_digit,
    my_number_check_digits_np,
    resident_code_check_digit,
    resident_code_check_digits_np,
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
#: Elements per tile in the batch path: the AES buffers are TILE * 16 bytes each and a tile's
#: whole working set (~4.5 MiB) stays in cache. Feistel ns/number, one thread, on the 2-core
#: reference machine (Zen 4): 16 Ki 43.2, 64 Ki 41.4, 256 Ki 42.6, 1 Mi 57.4, 4 Mi 61.7 — the
#: strided numpy passes fall out of cache long before the per-call overhead matters.
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
        self.blocks = self.block_bytes.view("<u8").reshape(size, 2)
        # update_into wants block_size - 1 spare bytes in the output buffer
        self.out_bytes = np.zeros(size * 16 + 15, dtype=np.uint8)
        self.out_words = self.out_bytes[: size * 16].view("<u8").reshape(size, 2)
        self.block_mv = self.block_bytes.data
        self.out_mv = self.out_bytes.data
        self.x = np.empty(size, dtype=np.uint64)
        self.a = np.empty(size, dtype=np.uint64)
        self.b = np.empty(size, dtype=np.uint64)
        self.t = np.empty(size, dtype=np.uint64)
        self.q = np.empty(size, dtype=np.uint64)
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

    # ---- batch path: numpy, one AES call per round per tile ----

    def forward_tile(self, x: U64, ws: _Workspace) -> tuple[U64, U64]:
        """Permute one tile ``x`` (uint64, len <= ws.size); returns the halves (a, b) as views
        into the workspace (valid until its next use): the result is ``a * 10**v + b``."""
        n = x.shape[0]
        mu, mv = np.uint64(10**self.u), np.uint64(10**self.v)
        blk = ws.blocks[:n]
        blk_bytes = ws.block_mv[: n * 16]
        out_bytes = ws.out_mv[: n * 16 + 15]
        y = ws.out_words[:n, 0]
        a, b, t, q = ws.a[:n], ws.b[:n], ws.t[:n], ws.q[:n]
        blk[:, 0] = self.tag
        np.floor_divide(x, mv, out=a)
        np.multiply(a, mv, out=t)
        np.subtract(x, t, out=b)
        enc = ws.encryptor(self.key)
        mask = np.uint64(_MASK63)
        for i in range(self.rounds):
            src, dst, m = (b, a, mu) if i % 2 == 0 else (a, b, mv)
            # the AES input of the whole tile: word0 = tag (set above), word1 = round | half
            np.bitwise_or(src, np.uint64(i << _ROUND_SHIFT), out=blk[:, 1])
            enc.update_into(blk_bytes, out_bytes)
            np.bitwise_and(y, mask, out=t)
            np.add(t, dst, out=t)
            # dst = t mod m as t - (t // m) * m: numpy's uint64 floor_divide by a scalar uses
            # libdivide and is ~6x faster than np.remainder
            np.floor_divide(t, m, out=q)
            np.multiply(q, m, out=q)
            np.subtract(t, q, out=dst)
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
        offset = np.uint64(0)
        if isinstance(versions, int | np.integer) and not isinstance(versions, bool):
            offset = np.uint64(self._check_version(versions) * _CODE_SPACE)
        else:
            va = np.asarray(versions)
            if va.shape != cb.shape or va.dtype.kind not in "iu":
                raise ValueError("versions must be an int or an integer array shaped like code_bases")
            if n and (int(va.min()) < 0 or int(va.max()) > self.MAX_VERSION):
                raise ValueError(f"versions must be in [0, {self.MAX_VERSION}]")
            ver = va.astype(np.uint64, copy=False)
        out = np.empty(n, dtype=np.int64)
        space = np.uint64(_CODE_SPACE)

        def tile(ws: _Workspace, s: int, e: int) -> None:
            x = ws.x[: e - s]
            if ver is not None:
                np.multiply(ver[s:e], space, out=x)
                np.add(x, cb[s:e], out=x)
            else:
                np.add(cb[s:e], offset, out=x)
            a, b = self._numbers.forward_tile(x, ws)
            _finish(a, b, 10**6, my_number_check_digits_np, out[s:e], ws)

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

        def tile(ws: _Workspace, s: int, e: int) -> None:
            x = ws.x[: e - s]
            x[:] = np.arange(start + s, start + e, dtype=np.uint64)
            a, b = self._codes.forward_tile(x, ws)
            _finish(a, b, 10**5, resident_code_check_digits_np, out[s:e], ws)

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


def _finish(
    a: U64,
    b: U64,
    low_space: int,
    check_digits: Callable[[I64], I64],
    out: I64,
    ws: _Workspace,
) -> None:
    """out = (a * low_space + b) * 10 + check_digits(a * low_space + b)."""
    base = ws.t[: a.shape[0]]
    np.multiply(a, np.uint64(low_space), out=base)
    np.add(base, b, out=base)
    ib = base.view(np.int64)
    check = check_digits(ib)
    np.multiply(ib, 10, out=out)
    np.add(out, check, out=out)
