"""Benchmark of J-LIS number generation and bulk persistence.

``run(count, pg_url, sqlite_dir)`` measures, in one run on one machine:

* ``numbers_per_s`` — ``NumberGenerator.my_numbers_batch`` over ``count`` distinct 住民票コード
  (including check digits, excluding persistence), best of ``repeats`` after a warm-up;
* ``aes_blocks_per_s`` — raw AES-ECB throughput with the same key size, the same buffer size (one
  tile) and the same number of threads, measured interleaved with the generator runs so both see
  the same machine load; ``ceiling_numbers_per_s = aes_blocks_per_s / rounds`` (one AES call per
  round per number) and ``ratio = numbers_per_s / ceiling_numbers_per_s``;
* persistence of ``persist_rows = min(count, 1_000_000)`` issued numbers with
  ``persist_issued_numbers`` into the constrained ``issued_numbers`` table, against the plain
  baseline of the same rows (SQLite: sqlite3 ``executemany`` into a bare table, rows prepared
  beforehand; PostgreSQL: ``COPY`` of the pre-formatted rows into a bare table). Also reported:
  ``persist_into_bare_rows_per_s`` (our path into a bare table: the cost of our own formatting
  and ordering, without the indexes).

Run: ``python bench/numbering.py --count 10000000 --pg-url postgresql://postgres@127.0.0.1:5432/test``
prints one JSON object.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from kojinbango.domain.identifiers import my_number_check_digits_np
from kojinbango.jlis import bulk
from kojinbango.jlis.bulk import persist_issued_numbers
from kojinbango.jlis.numbering import AES_KEY_BITS, ROUNDS, TILE, NumberGenerator, default_workers

PERSIST_MAX = 1_000_000
TARGETS = {"ratio": 0.5, "seconds_for_125m": 20.0, "persist_ratio": 0.7}
ISSUED_AT = datetime(2025, 11, 26, 9, 0, 0)
MUNICIPALITY = "131016"


def _table(md: sa.MetaData, name: str, schema: str | None, constrained: bool) -> sa.Table:
    return sa.Table(
        name,
        md,
        sa.Column("resident_code", sa.String(11), primary_key=constrained, nullable=False),
        sa.Column("version", sa.SmallInteger, primary_key=constrained, nullable=False),
        sa.Column("my_number", sa.String(12), nullable=False, unique=constrained),
        sa.Column("municipality", sa.String(6), nullable=False),
        sa.Column("issued_at", sa.DateTime, nullable=False),
        schema=schema,
    )


# ------------------------------------------------------------------------------- generation


def _aes_ceiling(key: bytes, blocks_total: int, workers: int) -> float:
    """AES-ECB blocks/s with the batch path's parallelism: ``workers`` threads (the calling one
    included, as in the generator) pull TILE-block buffers from a shared counter until
    ``blocks_total`` blocks are encrypted, each with its own encryptor and buffers."""
    calls_total = max(workers, -(-blocks_total // TILE))
    counter = itertools.count()
    barrier = threading.Barrier(workers)
    start: list[float] = []

    def work() -> None:
        inp = np.zeros(TILE * 16, dtype=np.uint8)
        inp.view("<u8")[1::2] = np.arange(TILE, dtype=np.uint64)  # distinct blocks, like real input
        out = np.empty(TILE * 16 + 15, dtype=np.uint8)
        enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        src, dst = inp.data, out.data
        if barrier.wait() == 0:
            start.append(time.perf_counter())
        while next(counter) < calls_total:
            enc.update_into(src, dst)

    threads = [threading.Thread(target=work) for _ in range(workers - 1)]
    for t in threads:
        t.start()
    work()
    for t in threads:
        t.join()
    return calls_total * TILE / (time.perf_counter() - start[0])


def _breakdown(gen: NumberGenerator, code_bases: np.ndarray) -> dict[str, float]:
    """Single-thread ns per number of the parts of one tile (for diagnosis)."""
    from kojinbango.jlis.numbering import _Workspace

    n = min(TILE, code_bases.shape[0])
    ws = _Workspace(TILE)
    x = code_bases[:n].astype(np.uint64)
    perm = gen._numbers
    reps = 30

    def best(fn: Callable[[], object]) -> float:
        fn()
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            times.append(time.perf_counter() - t0)
        return min(times) / reps / n * 1e9

    a, b = perm.forward_tile(x, ws)
    base = (a * np.uint64(10**6) + b).view(np.int64).copy()
    enc = ws.encryptor(perm.key)
    blk, out = ws.block_mv[: n * 16], ws.out_mv[: n * 16 + 15]

    def aes() -> None:
        for _ in range(ROUNDS):
            enc.update_into(blk, out)

    feistel = best(lambda: perm.forward_tile(x, ws))
    aes_ns = best(aes)
    return {
        "feistel_total": round(feistel, 2),
        "feistel_aes_part": round(aes_ns, 2),
        "feistel_numpy_part": round(feistel - aes_ns, 2),
        "check_digits": round(best(lambda: my_number_check_digits_np(base)), 2),
    }


def _generation(count: int, workers: int, repeats: int) -> dict[str, Any]:
    gen = NumberGenerator(os.urandom(32))
    t0 = time.perf_counter()
    codes = gen.resident_codes_batch(0, count, workers=workers)  # J-LIS's code stock: distinct
    codes_s = time.perf_counter() - t0
    code_bases = codes // 10
    # warm-up: a full-size call (capped) so that the threads, their buffers and the allocator
    # are in the state a long national run is in
    gen.my_numbers_batch(code_bases[: min(count, 10_000_000)], workers=workers)
    aes_key = gen._numbers.key
    gen_rates, aes_rates = [], []
    numbers = np.empty(0, dtype=np.int64)
    for _ in range(repeats):  # interleaved, so both see the same load
        t0 = time.perf_counter()
        numbers = gen.my_numbers_batch(code_bases, workers=workers)
        gen_rates.append(count / (time.perf_counter() - t0))
        aes_rates.append(_aes_ceiling(aes_key, count * ROUNDS, workers))
    numbers_per_s = max(gen_rates)
    aes_blocks_per_s = max(aes_rates)
    ceiling = aes_blocks_per_s / ROUNDS
    return {
        "codes": codes,
        "numbers": numbers,
        "numbers_per_s": numbers_per_s,
        "numbers_per_s_runs": [round(r) for r in gen_rates],
        "aes_blocks_per_s": aes_blocks_per_s,
        "aes_blocks_per_s_runs": [round(r) for r in aes_rates],
        "ceiling_numbers_per_s": ceiling,
        "ratio": numbers_per_s / ceiling,
        "codes_per_s": count / codes_s,
        "breakdown_ns_per_number_single_thread": _breakdown(gen, code_bases),
    }


# ------------------------------------------------------------------------------- persistence


def _rows(codes: np.ndarray, numbers: np.ndarray) -> dict[str, Any]:
    return {
        "resident_code": codes,
        "version": np.zeros(codes.shape[0], dtype=np.int16),
        "my_number": numbers,
        "municipality": MUNICIPALITY,
        "issued_at": ISSUED_AT,
    }


def _py_lists(codes: np.ndarray, numbers: np.ndarray) -> tuple[list[str], list[int], list[str]]:
    rc = np.char.zfill(codes.astype("U11"), 11).tolist()
    mn = np.char.zfill(numbers.astype("U12"), 12).tolist()
    return rc, [0] * codes.shape[0], mn


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _sqlite(codes: np.ndarray, numbers: np.ndarray, sqlite_dir: Path) -> dict[str, float]:
    n = codes.shape[0]
    sqlite_dir.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    paths = {k: sqlite_dir / f"bench_numbering_{k}_{tag}.db" for k in ("persist", "bare", "plain")}
    try:
        # the plain baseline: sqlite3 executemany of prepared rows into a bare table
        rc, ver, mn = _py_lists(codes, numbers)
        ts = ISSUED_AT.isoformat(sep=" ", timespec="microseconds")
        con = sqlite3.connect(paths["plain"], isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.execute(
            "CREATE TABLE plain_issued_numbers (resident_code VARCHAR(11) NOT NULL, version SMALLINT NOT NULL,"
            " my_number VARCHAR(12) NOT NULL, municipality VARCHAR(6) NOT NULL, issued_at DATETIME NOT NULL)"
        )
        rows = list(zip(rc, ver, mn, [MUNICIPALITY] * n, [ts] * n, strict=True))

        def plain() -> None:
            con.execute("BEGIN")
            con.executemany("INSERT INTO plain_issued_numbers VALUES (?, ?, ?, ?, ?)", rows)
            con.execute("COMMIT")

        plain_s = _timed(plain)
        assert con.execute("SELECT count(*) FROM plain_issued_numbers").fetchone()[0] == n
        con.close()
        rows.clear()

        result = {"plain": n / plain_s}
        for kind, constrained in (("persist", True), ("bare", False)):
            engine = sa.create_engine(f"sqlite:///{paths[kind]}")
            md = sa.MetaData()
            table = _table(md, "issued_numbers", None, constrained)
            md.create_all(engine)
            data = _rows(codes, numbers)
            t0 = time.perf_counter()
            persist_issued_numbers(engine, table, data)
            result[kind] = n / (time.perf_counter() - t0)
            with engine.connect() as conn:
                assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == n
            engine.dispose()
        return result
    finally:
        for p in paths.values():
            for suffix in ("", "-wal", "-shm"):
                Path(f"{p}{suffix}").unlink(missing_ok=True)


def _urls(pg_url: str) -> tuple[str, str]:
    """(SQLAlchemy URL with the psycopg driver, libpq URL)."""
    scheme, rest = pg_url.split("://", 1)
    return f"postgresql+psycopg://{rest}", f"postgresql://{rest}"


def _postgresql(codes: np.ndarray, numbers: np.ndarray, pg_url: str) -> dict[str, float]:
    n = codes.shape[0]
    sa_url, _ = _urls(pg_url)
    engine = sa.create_engine(sa_url)
    schema = f"bench_numbering_{uuid.uuid4().hex[:12]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        md = sa.MetaData()
        full = _table(md, "issued_numbers", schema, True)
        bare = _table(md, "bare_issued_numbers", schema, False)
        plain_t = _table(md, "plain_issued_numbers", schema, False)
        md.create_all(engine)
        data = _rows(codes, numbers)

        # the plain baseline: COPY of the same rows, formatted beforehand, into a bare table
        _, columns = bulk._prepare(plain_t, data)
        payload = b"".join(bytes(c) for c in bulk._copy_payload(columns, n))
        # (the formatting above is not timed: the baseline gets its bytes for free)
        chunk = bulk.COPY_CHUNK_BYTES

        def plain() -> None:
            with engine.begin() as conn:
                raw: Any = conn.connection.driver_connection
                with raw.cursor() as cur, cur.copy(f'COPY "{schema}".plain_issued_numbers FROM STDIN') as cp:
                    view = memoryview(payload)
                    for i in range(0, len(payload), chunk):
                        cp.write(view[i : i + chunk])

        result = {"plain": n / _timed(plain)}
        result["persist"] = n / _timed(lambda: persist_issued_numbers(engine, full, data))
        result["bare"] = n / _timed(lambda: persist_issued_numbers(engine, bare, data))
        with engine.connect() as conn:
            for t in (full, bare, plain_t):
                assert conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() == n
        return result
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


# ------------------------------------------------------------------------------- run


def run(
    count: int, pg_url: str | None, sqlite_dir: Path, *, workers: int | None = None, repeats: int = 5
) -> dict:
    """Measure generation and persistence; returns a JSON-serialisable dict (see module doc)."""
    if count < 1:
        raise ValueError("count must be positive")
    # threads actually used: the batch path gives each thread whole tiles, so a small count uses
    # fewer; the ceiling is measured with the same number
    workers = max(1, min(workers or default_workers(), -(-count // TILE)))
    g = _generation(count, workers, repeats)
    persist_rows = min(count, PERSIST_MAX)
    codes, numbers = g.pop("codes")[:persist_rows], g.pop("numbers")[:persist_rows]

    sq = _sqlite(codes, numbers, Path(sqlite_dir))
    pg = _postgresql(codes, numbers, pg_url) if pg_url else None

    def ratio(d: dict[str, float] | None, a: str, b: str) -> float | None:
        return None if d is None else round(d[a] / d[b], 3)

    def val(d: dict[str, float] | None, k: str) -> float | None:
        return None if d is None else round(d[k])

    numbers_per_s = g["numbers_per_s"]
    projected = 125e6 / numbers_per_s
    result: dict[str, Any] = {
        "count": count,
        "workers": workers,
        "rounds": ROUNDS,
        "aes_key_bits": AES_KEY_BITS,
        "tile": TILE,
        "numbers_per_s": round(numbers_per_s),
        "ceiling_numbers_per_s": round(g["ceiling_numbers_per_s"]),
        "ratio": round(g["ratio"], 3),
        "aes_blocks_per_s": round(g["aes_blocks_per_s"]),
        "projected_seconds_for_125m": round(projected, 2),
        "numbers_per_s_runs": g["numbers_per_s_runs"],
        "aes_blocks_per_s_runs": g["aes_blocks_per_s_runs"],
        "codes_per_s": round(g["codes_per_s"]),
        "breakdown_ns_per_number_single_thread": g["breakdown_ns_per_number_single_thread"],
        "persist_rows": persist_rows,
        "persist_rows_per_s": {"sqlite": val(sq, "persist"), "postgresql": val(pg, "persist")},
        "plain_bulk_insert_rows_per_s": {"sqlite": val(sq, "plain"), "postgresql": val(pg, "plain")},
        "persist_ratio": {
            "sqlite": ratio(sq, "persist", "plain"),
            "postgresql": ratio(pg, "persist", "plain"),
        },
        "persist_into_bare_rows_per_s": {"sqlite": val(sq, "bare"), "postgresql": val(pg, "bare")},
        "persist_into_bare_ratio": {
            "sqlite": ratio(sq, "bare", "plain"),
            "postgresql": ratio(pg, "bare", "plain"),
        },
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpus": default_workers(),
    }
    pr = [v for v in result["persist_ratio"].values() if v is not None]
    result["targets_met"] = {
        "ratio": result["ratio"] >= TARGETS["ratio"],
        "seconds_for_125m": projected < TARGETS["seconds_for_125m"],
        "persist_ratio": bool(pr) and min(pr) >= TARGETS["persist_ratio"],
    }
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--count", type=int, default=10_000_000)
    p.add_argument("--pg-url", default=os.environ.get("KOJINBANGO_TEST_PG_URL"))
    p.add_argument("--sqlite-dir", type=Path, default=None)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    if args.sqlite_dir is None:
        with tempfile.TemporaryDirectory(prefix="kojinbango-bench-") as d:
            out = run(args.count, args.pg_url, Path(d), workers=args.workers, repeats=args.repeats)
    else:
        out = run(args.count, args.pg_url, args.sqlite_dir, workers=args.workers, repeats=args.repeats)
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
