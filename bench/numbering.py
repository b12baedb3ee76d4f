"""Benchmark of J-LIS number generation and bulk persistence.

``run(count, pg_url, sqlite_dir)`` measures, in one run on one machine:

* ``numbers_per_s`` — ``NumberGenerator.my_numbers_batch`` over ``count`` distinct 住民票コード
  (including check digits, excluding persistence), best of ``repeats`` after a warm-up;
* ``aes_blocks_per_s`` — raw AES-ECB throughput with the same key size, the same buffer size (one
  tile) and the same number of threads, measured interleaved with the generator runs so both see
  the same machine load; ``ceiling_numbers_per_s = aes_blocks_per_s / rounds`` (one AES call per
  round per number) and ``ratio = numbers_per_s / ceiling_numbers_per_s``;
* ``kernel_first_call_s`` — what the first batch call of a fresh process costs for the compiled
  (numba) kernels: with an empty on-disk cache (compilation) and with a warm one (loading);
* persistence of ``persist_rows = min(count, 1_000_000)`` issued numbers, each figure the best of
  ``persist_repeats`` runs into a freshly created, empty table (the four kinds interleaved):

  - ``persist_rows_per_s`` — ``persist_issued_numbers`` into the real table (primary key
    (resident_code, version) + UNIQUE my_number);
  - ``plain_bulk_insert_rows_per_s`` — the plain, straightforward bulk insert of the same rows into
    an IDENTICAL table (same DDL): SQLite ``executemany`` of Python tuples with the sqlite3 module
    in one transaction; PostgreSQL psycopg ``COPY … FROM STDIN`` with ``copy.write_row`` per row.
    The baseline is given every advantage: its tuples are built beforehand (untimed) and already
    sorted by primary key, and on SQLite it runs with the same pragmas as ours (WAL,
    synchronous=NORMAL, the same page cache). ``persist_ratio`` = ours / baseline;
  - ``persist_into_bare_rows_per_s`` and ``bare_table_plain_rows_per_s`` — the same two into a
    bare table (no primary key, no UNIQUE): what is left without index maintenance.

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
    from kojinbango.domain.identifiers import _my_number_check_tables
    from kojinbango.jlis.numbering import _finish, _Workspace

    n = min(TILE, code_bases.shape[0])
    ws = _Workspace(TILE)
    x = code_bases[:n].astype(np.uint64)
    perm = gen._numbers
    reps = 30

    def best(fn: Callable[[], object]) -> float:
        fn()
        times = []
        for _ in range(7):  # best of 7: robust against other load on the machine
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            times.append(time.perf_counter() - t0)
        return min(times) / reps / n * 1e9

    a, b = perm.forward_tile(x, ws)
    a, b = a.copy(), b.copy()
    base = (a * np.uint64(10**6) + b).view(np.int64)
    out = np.empty(n, dtype=np.int64)
    tables = _my_number_check_tables()
    enc = ws.encryptor(perm.key)
    blk, aes_out = ws.block_mv[: n * 16], ws.out_mv[: n * 16 + 15]

    def aes() -> None:
        for _ in range(ROUNDS):
            enc.update_into(blk, aes_out)

    feistel = best(lambda: perm.forward_tile(x, ws))
    aes_ns = best(aes)
    return {
        "feistel_total": round(feistel, 2),
        "feistel_aes_part": round(aes_ns, 2),
        "feistel_non_aes_part": round(feistel - aes_ns, 2),
        "finish_with_check_digits": round(best(lambda: _finish(a, b, 10**6, tables, out)), 2),
        "check_digits_np": round(best(lambda: my_number_check_digits_np(base)), 2),
    }


_FIRST_CALL = """
import time
t0 = time.perf_counter()
import numpy as np
from kojinbango.jlis.numbering import NumberGenerator
t1 = time.perf_counter()
g = NumberGenerator(bytes(32))
g.my_numbers_batch(np.arange(10))
g.resident_codes_batch(0, 10)
print(time.perf_counter() - t1)
"""


def _first_call_costs() -> dict[str, float]:
    """Seconds of the first ``my_numbers_batch`` + ``resident_codes_batch`` call of a fresh process
    (numba import, kernel compilation or cache load, check-digit tables), with an empty and then a
    warm numba cache (a private NUMBA_CACHE_DIR, so the project's own cache is not touched)."""
    import subprocess
    import sys

    out = {}
    with tempfile.TemporaryDirectory(prefix="kojinbango-numba-") as d:
        env = {**os.environ, "NUMBA_CACHE_DIR": d}
        for key in ("cold_cache", "warm_cache"):
            res = subprocess.run(
                [sys.executable, "-c", _FIRST_CALL], env=env, capture_output=True, text=True, check=True
            )
            out[key] = round(float(res.stdout.strip()), 3)
    return out


def _generation(count: int, workers: int, repeats: int) -> dict[str, Any]:
    gen = NumberGenerator(os.urandom(32))
    gen.resident_codes_batch(0, 10)  # the kernels' first-call cost is reported separately
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


KINDS = ("persist", "plain", "persist_bare", "plain_bare")  # ours / baseline, real / bare table


def _rows(codes: np.ndarray, numbers: np.ndarray) -> dict[str, Any]:
    return {
        "resident_code": codes,
        "version": np.zeros(codes.shape[0], dtype=np.int16),
        "my_number": numbers,
        "municipality": MUNICIPALITY,
        "issued_at": ISSUED_AT,
    }


def _baseline_tuples(codes: np.ndarray, numbers: np.ndarray, issued_at: object) -> list[tuple[Any, ...]]:
    """The baseline's rows as Python tuples, sorted by primary key (built untimed)."""
    order = np.argsort(codes, kind="stable")
    rc = np.char.zfill(codes[order].astype("U11"), 11).tolist()
    mn = np.char.zfill(numbers[order].astype("U12"), 12).tolist()
    return [(r, 0, m, MUNICIPALITY, issued_at) for r, m in zip(rc, mn, strict=True)]


def _timed(fn: Callable[..., object], *args: Any) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def _best(runs: dict[str, list[float]]) -> dict[str, float]:
    return {k: max(v) for k, v in runs.items()}


def _sqlite(codes: np.ndarray, numbers: np.ndarray, sqlite_dir: Path, repeats: int) -> dict[str, list[float]]:
    n = codes.shape[0]
    sqlite_dir.mkdir(parents=True, exist_ok=True)
    ts = ISSUED_AT.isoformat(sep=" ", timespec="microseconds")  # what SQLAlchemy stores
    tuples = _baseline_tuples(codes, numbers, ts)
    data = _rows(codes, numbers)
    runs: dict[str, list[float]] = {k: [] for k in KINDS}
    for _ in range(repeats):
        for kind in KINDS:
            path = sqlite_dir / f"bench_numbering_{kind}_{uuid.uuid4().hex[:8]}.db"
            engine = sa.create_engine(f"sqlite:///{path}")
            try:
                md = sa.MetaData()
                table = _table(md, "issued_numbers", None, not kind.endswith("_bare"))
                md.create_all(engine)  # the same DDL for ours and the baseline
                if kind.startswith("persist"):
                    elapsed = _timed(persist_issued_numbers, engine, table, data)
                else:
                    elapsed = _sqlite_plain(path, tuples)
                with engine.connect() as conn:
                    assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == n
                runs[kind].append(n / elapsed)
            finally:
                engine.dispose()
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
    return runs


def _sqlite_plain(path: Path, tuples: list[tuple[Any, ...]]) -> float:
    """sqlite3 executemany of the tuples in one transaction, with our path's pragmas."""
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.execute(f"PRAGMA cache_size=-{bulk.SQLITE_CACHE_KIB}")
        sql = "INSERT INTO issued_numbers VALUES (?, ?, ?, ?, ?)"
        t0 = time.perf_counter()
        con.execute("BEGIN IMMEDIATE")
        con.executemany(sql, tuples)
        con.execute("COMMIT")
        return time.perf_counter() - t0
    finally:
        con.close()


def _urls(pg_url: str) -> str:
    """SQLAlchemy URL with the psycopg driver."""
    _, rest = pg_url.split("://", 1)
    return f"postgresql+psycopg://{rest}"


def _postgresql(codes: np.ndarray, numbers: np.ndarray, pg_url: str, repeats: int) -> dict[str, list[float]]:
    n = codes.shape[0]
    engine = sa.create_engine(_urls(pg_url))
    schema = f"bench_numbering_{uuid.uuid4().hex[:12]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    tuples = _baseline_tuples(codes, numbers, ISSUED_AT)
    data = _rows(codes, numbers)
    runs: dict[str, list[float]] = {k: [] for k in KINDS}
    try:
        for rep in range(repeats):
            for kind in KINDS:
                md = sa.MetaData()
                table = _table(md, f"{kind}_{rep}", schema, not kind.endswith("_bare"))
                md.create_all(engine)  # the same DDL for ours and the baseline
                try:
                    if kind.startswith("persist"):
                        elapsed = _timed(persist_issued_numbers, engine, table, data)
                    else:
                        elapsed = _timed(_pg_plain, engine, table, tuples)
                    with engine.connect() as conn:
                        assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == n
                    runs[kind].append(n / elapsed)
                finally:
                    md.drop_all(engine)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()
    return runs


def _pg_plain(engine: sa.Engine, table: sa.Table, tuples: list[tuple[Any, ...]]) -> None:
    """psycopg COPY FROM STDIN with one ``write_row`` per row, in one transaction."""
    sql = f'COPY "{table.schema}"."{table.name}" FROM STDIN'
    with engine.begin() as conn:
        raw: Any = conn.connection.driver_connection
        with raw.cursor() as cur, cur.copy(sql) as cp:
            for row in tuples:
                cp.write_row(row)


NOTES = (
    "ratio: numbers_per_s over raw AES-ECB blocks/s (same key size, tile buffer and threads) / rounds. "
    "persist_rows_per_s: persist_issued_numbers into the real table (PK (resident_code, version) + "
    "UNIQUE my_number). plain_bulk_insert_rows_per_s: the plain bulk insert of the same rows into an "
    "identical table (same DDL) — SQLite: sqlite3 executemany of Python tuples in one transaction, "
    "with our path's pragmas (WAL, synchronous=NORMAL, same page cache); PostgreSQL: psycopg COPY FROM "
    "STDIN with copy.write_row per row; its tuples are built beforehand (untimed) and pre-sorted by "
    "primary key. persist_ratio = persist / plain. bare_table_plain_rows_per_s and "
    "persist_into_bare_rows_per_s: the same two into a table without PK or UNIQUE. Every figure is "
    "the best of its runs (see persistence_runs_rows_per_s), each run into a fresh empty table. "
    "kernel_first_call_s: first batch call of a fresh process (numba import + compile or cache load)."
)


# ------------------------------------------------------------------------------- run


def run(
    count: int,
    pg_url: str | None,
    sqlite_dir: Path,
    *,
    workers: int | None = None,
    repeats: int = 5,
    persist_repeats: int = 3,
) -> dict:
    """Measure generation and persistence; returns a JSON-serialisable dict (see module doc)."""
    if count < 1:
        raise ValueError("count must be positive")
    # threads actually used: the batch path gives each thread whole tiles, so a small count uses
    # fewer; the ceiling is measured with the same number
    workers = max(1, min(workers or default_workers(), -(-count // TILE)))
    first_call = _first_call_costs()
    g = _generation(count, workers, repeats)
    persist_rows = min(count, PERSIST_MAX)
    codes, numbers = g.pop("codes")[:persist_rows], g.pop("numbers")[:persist_rows]

    sq_runs = _sqlite(codes, numbers, Path(sqlite_dir), persist_repeats)
    pg_runs = _postgresql(codes, numbers, pg_url, persist_repeats) if pg_url else None
    sq, pg = _best(sq_runs), (_best(pg_runs) if pg_runs else None)

    def per_db(k: str) -> dict[str, float | None]:
        return {"sqlite": round(sq[k]), "postgresql": None if pg is None else round(pg[k])}

    def ratio(a: str, b: str) -> dict[str, float | None]:
        return {
            "sqlite": round(sq[a] / sq[b], 3),
            "postgresql": None if pg is None else round(pg[a] / pg[b], 3),
        }

    def rounded(runs: dict[str, list[float]] | None) -> dict[str, list[int]] | None:
        return None if runs is None else {k: [round(r) for r in v] for k, v in runs.items()}

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
        "kernel_first_call_s": first_call,
        "persist_rows": persist_rows,
        "persist_repeats": persist_repeats,
        "persist_rows_per_s": per_db("persist"),
        "plain_bulk_insert_rows_per_s": per_db("plain"),
        "persist_ratio": ratio("persist", "plain"),
        "persist_into_bare_rows_per_s": per_db("persist_bare"),
        "bare_table_plain_rows_per_s": per_db("plain_bare"),
        "persist_into_bare_ratio": ratio("persist_bare", "plain_bare"),
        "persistence_runs_rows_per_s": {"sqlite": rounded(sq_runs), "postgresql": rounded(pg_runs)},
        "notes": NOTES,
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
    p.add_argument("--persist-repeats", type=int, default=3)
    args = p.parse_args(argv)
    kw = {"workers": args.workers, "repeats": args.repeats, "persist_repeats": args.persist_repeats}
    if args.sqlite_dir is None:
        with tempfile.TemporaryDirectory(prefix="kojinbango-bench-") as d:
            out = run(args.count, args.pg_url, Path(d), **kw)
    else:
        out = run(args.count, args.pg_url, args.sqlite_dir, **kw)
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
