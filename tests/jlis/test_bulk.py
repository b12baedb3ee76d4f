"""Bulk persistence of issued numbers: exact rows, all-or-nothing, SQLite and PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from kojinbango.jlis import bulk
from kojinbango.jlis.bulk import persist_issued_numbers

ISSUED_AT = datetime(2025, 11, 26, 9, 30, 15, 123456)


def issued_numbers_table(metadata: sa.MetaData, schema: str | None = None) -> sa.Table:
    """The J-LIS table as the lead's model declares it (built here so the test stands alone)."""
    return sa.Table(
        "issued_numbers",
        metadata,
        sa.Column("resident_code", sa.String(11), primary_key=True, nullable=False),
        sa.Column("version", sa.SmallInteger, primary_key=True, nullable=False),
        sa.Column("my_number", sa.String(12), nullable=False, unique=True),
        sa.Column("municipality", sa.String(6), nullable=False),
        sa.Column("issued_at", sa.DateTime, nullable=False),
        schema=schema,
    )


def _rows(n: int, seed: int = 0) -> dict[str, np.ndarray | str | datetime]:
    rng = np.random.default_rng(seed)
    codes = rng.permutation(np.unique(rng.integers(0, 10**11, n + 100)))[:n]
    numbers = rng.permutation(np.unique(rng.integers(0, 10**12, n + 100)))[:n]
    return {
        "resident_code": codes,
        "version": rng.integers(0, 3, n).astype(np.int16),
        "my_number": numbers,
        "municipality": "131016",
        "issued_at": ISSUED_AT,
    }


def _expected(rows: dict[str, np.ndarray | str | datetime]) -> set[tuple[object, ...]]:
    rc, ver, mn = rows["resident_code"], rows["version"], rows["my_number"]
    assert isinstance(rc, np.ndarray) and isinstance(ver, np.ndarray) and isinstance(mn, np.ndarray)
    muni = rows["municipality"]
    return {
        (f"{c:011d}", int(v), f"{m:012d}", muni if isinstance(muni, str) else str(muni[i]), ISSUED_AT)
        for i, (c, v, m) in enumerate(zip(rc.tolist(), ver.tolist(), mn.tolist(), strict=True))
    }


def _read(engine: sa.Engine, table: sa.Table) -> set[tuple[object, ...]]:
    with engine.connect() as conn:
        return {tuple(r) for r in conn.execute(sa.select(*table.columns))}


def _count(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[tuple[sa.Engine, sa.Table]]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'jlis.db'}")
    md = sa.MetaData()
    table = issued_numbers_table(md)
    md.create_all(engine)
    yield engine, table
    engine.dispose()


@pytest.fixture
def pg_db() -> Iterator[tuple[sa.Engine, sa.Table]]:
    url = os.environ.get("KOJINBANGO_TEST_PG_URL")
    if not url:
        pytest.skip("KOJINBANGO_TEST_PG_URL is not set")
    engine = sa.create_engine(url)
    schema = f"test_bulk_{uuid.uuid4().hex[:12]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    md = sa.MetaData()
    table = issued_numbers_table(md, schema)
    md.create_all(engine)
    try:
        yield engine, table
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest) -> tuple[sa.Engine, sa.Table]:
    name = "sqlite_db" if request.param == "sqlite" else "pg_db"
    result: tuple[sa.Engine, sa.Table] = request.getfixturevalue(name)
    return result


def test_writes_exactly_the_rows(db: tuple[sa.Engine, sa.Table]) -> None:
    engine, table = db
    rows = _rows(20_000)
    assert persist_issued_numbers(engine, table, rows) == 20_000
    assert _read(engine, table) == _expected(rows)
    # a second batch adds to the first
    more = _rows(5_000, seed=1)
    assert persist_issued_numbers(engine, table, more) == 5_000
    assert _read(engine, table) == _expected(rows) | _expected(more)


def test_leading_zeros_are_kept(db: tuple[sa.Engine, sa.Table]) -> None:
    engine, table = db
    rows: dict[str, np.ndarray | str | datetime] = {
        "resident_code": np.array([5, 10**10, 99_999_999_999]),
        "version": np.array([0, 1, 9]),
        "my_number": np.array([7, 123, 999_999_999_999]),
        "municipality": "011002",  # 札幌市: a leading zero
        "issued_at": ISSUED_AT,
    }
    persist_issued_numbers(engine, table, rows)
    assert _read(engine, table) == {
        ("00000000005", 0, "000000000007", "011002", ISSUED_AT),
        ("10000000000", 1, "000000000123", "011002", ISSUED_AT),
        ("99999999999", 9, "999999999999", "011002", ISSUED_AT),
    }


def test_duplicate_in_batch_writes_nothing(db: tuple[sa.Engine, sa.Table]) -> None:
    engine, table = db
    rows = _rows(10_000)
    mn = rows["my_number"]
    assert isinstance(mn, np.ndarray)
    mn[9_000] = mn[10]  # two people with one number: must never be stored
    with pytest.raises(sa.exc.IntegrityError) as err:
        persist_issued_numbers(engine, table, rows)
    assert _count(engine, table) == 0
    # the error names the constraint but never quotes the number (logs must not carry it)
    text = str(err.value) + repr(err.value.orig) + str(err.value.__cause__) + str(err.value.__context__)
    assert f"{int(mn[10]):012d}" not in text and str(int(mn[10])) not in text
    assert "my_number" in text


def test_duplicate_against_stored_rows_writes_nothing(db: tuple[sa.Engine, sa.Table]) -> None:
    engine, table = db
    first = _rows(3_000)
    persist_issued_numbers(engine, table, first)
    second = _rows(3_000, seed=7)
    rc2, rc1 = second["resident_code"], first["resident_code"]
    v2, v1 = second["version"], first["version"]
    assert isinstance(rc2, np.ndarray) and isinstance(rc1, np.ndarray)
    assert isinstance(v2, np.ndarray) and isinstance(v1, np.ndarray)
    rc2[2_999], v2[2_999] = rc1[0], v1[0]  # primary key already issued
    with pytest.raises(sa.exc.IntegrityError):
        persist_issued_numbers(engine, table, second)
    assert _read(engine, table) == _expected(first)


def test_per_row_strings_and_datetimes(db: tuple[sa.Engine, sa.Table]) -> None:
    engine, table = db
    times = np.array(["2025-01-02T03:04:05.000006", "2026-12-31T23:59:59.999999"], dtype="datetime64[us]")
    rows: dict[str, np.ndarray | str | datetime] = {
        "resident_code": np.array(["12345678901", "00000000001"]),
        "version": np.array([0, 2]),
        "my_number": np.array(["123456789012", "000000000002"]),
        "municipality": np.array(["131016", "011002"]),
        "issued_at": times,
    }
    persist_issued_numbers(engine, table, rows)
    assert _read(engine, table) == {
        ("12345678901", 0, "123456789012", "131016", datetime(2025, 1, 2, 3, 4, 5, 6)),
        ("00000000001", 2, "000000000002", "011002", datetime(2026, 12, 31, 23, 59, 59, 999999)),
    }


def test_text_needing_copy_escapes(db: tuple[sa.Engine, sa.Table], monkeypatch: pytest.MonkeyPatch) -> None:
    engine, table = db
    monkeypatch.setattr(bulk, "COPY_CHUNK_BYTES", 64)  # several chunks on the general path too
    odd = ["a\tb", "c\\d", "e\nf", "市区町", "x"]
    rows: dict[str, np.ndarray | str | datetime] = {
        "resident_code": np.arange(5),
        "version": 0,
        "my_number": np.arange(100, 105),
        "municipality": np.array(odd, dtype=object),
        "issued_at": ISSUED_AT,
    }
    persist_issued_numbers(engine, table, rows)
    got = {r[0]: r[3] for r in _read(engine, table)}
    assert got == {f"{i:011d}": odd[i] for i in range(5)}


def test_small_copy_chunks(db: tuple[sa.Engine, sa.Table], monkeypatch: pytest.MonkeyPatch) -> None:
    engine, table = db
    monkeypatch.setattr(bulk, "COPY_CHUNK_BYTES", 1000)
    rows = _rows(2_345, seed=3)
    persist_issued_numbers(engine, table, rows)
    assert _read(engine, table) == _expected(rows)


def test_rejects_bad_batches(sqlite_db: tuple[sa.Engine, sa.Table]) -> None:
    engine, table = sqlite_db
    rows = _rows(10)
    with pytest.raises(ValueError):
        persist_issued_numbers(engine, table, {**rows, "nonsense": "x"})
    with pytest.raises(ValueError):
        persist_issued_numbers(engine, table, {k: v for k, v in rows.items() if k != "municipality"})
    with pytest.raises(ValueError):
        persist_issued_numbers(engine, table, {**rows, "version": np.zeros(9, dtype=np.int16)})
    with pytest.raises(ValueError):
        persist_issued_numbers(engine, table, {**rows, "resident_code": np.full(10, 10**11)})
    with pytest.raises(ValueError):
        persist_issued_numbers(
            engine, table, {k: (0 if isinstance(v, np.ndarray) else v) for k, v in rows.items()}
        )
    assert _count(engine, table) == 0
    empty = {k: (v[:0] if isinstance(v, np.ndarray) else v) for k, v in rows.items()}
    assert persist_issued_numbers(engine, table, empty) == 0


def test_sqlite_pragmas(sqlite_db: tuple[sa.Engine, sa.Table]) -> None:
    engine, table = sqlite_db
    with engine.connect() as conn:
        before = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
    persist_issued_numbers(engine, table, _rows(100))
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        # the enlarged page cache is only for the duration of the call
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == before


# --- bench/numbering.py: its baselines insert the same rows into identical tables -------------


def _bench_module() -> Any:
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "bench" / "numbering.py"
    spec = importlib.util.spec_from_file_location("kojinbango_bench_numbering_under_test", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bench_data(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    codes = rng.permutation(np.unique(rng.integers(0, 10**11, n + 100)))[:n]
    numbers = rng.permutation(np.unique(rng.integers(0, 10**12, n + 100)))[:n]
    return codes, numbers


def test_bench_sqlite_baseline_matches_our_rows(tmp_path: Path) -> None:
    bench = _bench_module()
    codes, numbers = _bench_data(3000)
    tables = {}
    for kind in ("ours", "plain"):
        engine = sa.create_engine(f"sqlite:///{tmp_path / kind}.db")
        md = sa.MetaData()
        tables[kind] = (engine, bench._table(md, "issued_numbers", None, True))
        md.create_all(engine)
    persist_issued_numbers(*tables["ours"], bench._rows(codes, numbers))
    ts = bench.ISSUED_AT.isoformat(sep=" ", timespec="microseconds")
    assert bench._sqlite_plain(tmp_path / "plain.db", bench._baseline_tuples(codes, numbers, ts)) > 0
    assert _read(*tables["ours"]) == _read(*tables["plain"])
    assert len(_read(*tables["ours"])) == 3000
    for engine, _ in tables.values():
        engine.dispose()
    runs = bench._sqlite(codes, numbers, tmp_path / "runs", 2)
    assert set(runs) == set(bench.KINDS) and all(len(v) == 2 and min(v) > 0 for v in runs.values())


@pytest.mark.postgres
def test_bench_postgresql_baseline_matches_our_rows(pg_db: tuple[sa.Engine, sa.Table]) -> None:
    bench = _bench_module()
    engine, ours = pg_db
    codes, numbers = _bench_data(3000)
    md = sa.MetaData()
    plain = bench._table(md, "plain_issued_numbers", ours.schema, True)
    md.create_all(engine)
    persist_issued_numbers(engine, ours, bench._rows(codes, numbers))
    bench._pg_plain(engine, plain, bench._baseline_tuples(codes, numbers, bench.ISSUED_AT))
    assert _read(engine, ours) == _read(engine, plain)
    assert _count(engine, plain) == 3000
    runs = bench._postgresql(codes, numbers, os.environ["KOJINBANGO_TEST_PG_URL"], 1)
    assert set(runs) == set(bench.KINDS) and all(len(v) == 1 and min(v) > 0 for v in runs.values())
