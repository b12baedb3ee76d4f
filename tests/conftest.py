"""Shared fixtures: PostgreSQL databases on demand, and a small running nation."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

PG_ENV = "KOJINBANGO_TEST_PG_URL"
_pg_status: dict[str, str] = {}


def _pg_base_url() -> str | None:
    url = os.environ.get(PG_ENV)
    if not url:
        _pg_status["reason"] = f"{PG_ENV} is not set"
        return None
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3):
            pass
    except Exception as exc:  # any failure to connect means "no server here"
        _pg_status["reason"] = f"no PostgreSQL server answered at {url} ({type(exc).__name__})"
        return None
    return url


@pytest.fixture(scope="session")
def pg_base_url() -> str:
    url = _pg_base_url()
    if url is None:
        if os.environ.get("KOJINBANGO_REQUIRE_PG"):
            pytest.fail("PostgreSQL is required (KOJINBANGO_REQUIRE_PG) but " + _pg_status["reason"])
        _pg_status["skipped"] = "yes"
        pytest.skip("PostgreSQL tests skipped: " + _pg_status["reason"])
    _pg_status["used"] = url
    return url


@pytest.fixture(scope="session")
def pg_database(pg_base_url: str) -> Iterator[Callable[[str], str]]:
    """A factory of fresh PostgreSQL databases (dropped at the end); returns SQLAlchemy URLs."""
    import psycopg

    created: list[str] = []

    def make(label: str) -> str:
        name = f"kbtest_{label}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(pg_base_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return pg_base_url.rsplit("/", 1)[0] + "/" + name

    yield make
    with psycopg.connect(pg_base_url, autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _pg_status.get("skipped"):
        terminalreporter.write_line(
            "PostgreSQL tests were SKIPPED: "
            + _pg_status.get("reason", "")
            + " — set KOJINBANGO_TEST_PG_URL to run them.",
            yellow=True,
            bold=True,
        )
    elif _pg_status.get("used"):
        terminalreporter.write_line("PostgreSQL tests ran against " + _pg_status["used"], green=True)


@pytest.fixture(scope="session")
def small_nation_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A nation of 400 residents, created and introduced once per session (copy it before mutating)."""
    from kojinbango.nation import init_nation, intro, running

    d = tmp_path_factory.mktemp("nation")
    init_nation(d, 400, seed=7)
    with running(d) as nation:
        intro(nation)
    return d


def staff_terminal(nation: object, org_id: str, roles: list[str], purpose: str | None = None) -> object:
    """An httpx client logged in at ``org_id``'s staff terminal as a new account with ``roles``
    (password + TOTP), with an applicant context for ``purpose`` open when given."""
    import secrets

    from kojinbango.municipality.staff.client import create_staff, staff_client

    rt = next(m for m in nation.municipalities() if m.org_id == org_id)  # type: ignore[attr-defined]
    account = create_staff(rt.services["staff"], "t-" + secrets.token_hex(4), "試験 職員", roles)
    return staff_client(nation.urls[org_id], account, purpose)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def staff_login() -> Callable[..., object]:
    """``staff_login(nation, org_id, roles, purpose=None)`` → a logged-in httpx client (see above)."""
    return staff_terminal
