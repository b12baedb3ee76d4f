"""The staff TOTP secrets are sealed at rest with the municipality's key (AES-256-GCM): the database
never holds the base32 secret, the login with a one-time code still works, and the migration seals
the rows written before it (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import stat
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pyotp
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from argon2 import PasswordHasher
from sqlalchemy import inspect, text

from kojinbango.common.db import Database
from kojinbango.common.errors import BusinessError
from kojinbango.municipality.staff import models
from kojinbango.municipality.staff.client import create_staff, staff_client
from kojinbango.municipality.staff.service import StaffService
from kojinbango.municipality.staff.vault import VaultError, open_sealed
from kojinbango.nation import Nation, running

ORG = "m131016"


@pytest.fixture(scope="module")
def nation(small_nation_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("totp") / "nation"
    shutil.copytree(small_nation_dir, d)
    with running(d) as n:
        yield n


def test_the_database_holds_no_totp_secret_and_login_works(nation: Nation) -> None:
    rt = nation.runtimes[ORG]
    account = create_staff(rt.services["staff"], "sealed-1", "封印 確認", ["resident_records"])
    secret = account["totp_secret"]
    with rt.db.engine.connect() as conn:
        stored = conn.execute(
            text("SELECT totp_secret_sealed FROM staff_accounts WHERE login = 'sealed-1'")
        ).scalar_one()
        columns = {c["name"] for c in inspect(conn).get_columns("staff_accounts")}
    assert "totp_secret" not in columns
    assert stored.startswith("v1:") and secret not in stored
    db_file = nation.topology.root / f"{ORG}.db"
    rt.db.engine.dispose()  # flush the WAL into the file before reading it
    for path in (db_file, db_file.with_name(db_file.name + "-wal")):
        if path.exists():
            assert secret.encode() not in path.read_bytes()
    key_file = nation.topology.root / "secrets" / ORG / "staff-totp.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600 and len(key_file.read_bytes()) == 32
    assert open_sealed(key_file.read_bytes(), "sealed-1", stored) == secret
    with pytest.raises(VaultError):  # bound to its login: not usable as another account's secret
        open_sealed(key_file.read_bytes(), "sealed-2", stored)
    with closing(staff_client(nation.urls[ORG], account)) as c:  # password + TOTP code
        assert c.get("/staff/home").status_code == 200


def test_a_wrong_key_opens_nothing(nation: Nation) -> None:
    rt = nation.runtimes[ORG]
    account = create_staff(rt.services["staff"], "sealed-3", "封印 別鍵", ["tax"])
    other = StaffService(rt.db, b"\x00" * 32)
    with pytest.raises(VaultError):
        other.login("sealed-3", account["password"], pyotp.TOTP(account["totp_secret"]).now())


def _at_revision_0001(url: str) -> None:
    db = Database(url)
    cfg = Config()
    cfg.set_main_option("script_location", models.MIGRATIONS)
    cfg.set_main_option("version_table", models.VERSION_TABLE)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    db.dispose()


def _old_row(url: str, login: str, password: str, secret: str) -> None:
    db = Database(url)
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO staff_accounts (login, display_name, roles, password_hash, totp_secret, "
                "active, failed_logins, last_totp_step, created_at) "
                "VALUES (:login, 'old', '[\"tax\"]', :hash, :secret, true, 0, 0, :at)"
            ),
            {
                "login": login,
                "hash": PasswordHasher().hash(password),
                "secret": secret,
                "at": dt.datetime(2026, 1, 1),
            },
        )
    db.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/staff.db"
    make: Callable[[str], str] = request.getfixturevalue("pg_database")
    return make("totp")


def test_the_migration_seals_existing_rows(database_url: str) -> None:
    _at_revision_0001(database_url)
    secret, password = pyotp.random_base32(), "an old password 1"
    _old_row(database_url, "old-1", password, secret)
    staff = [(models.MIGRATIONS, models.VERSION_TABLE)]
    with pytest.raises(RuntimeError, match="needs the municipality's key"):
        Database(database_url, extra_migrations=staff)  # never left half-done without the key
    key = os.urandom(32)
    db = Database(database_url, extra_migrations=staff, migration_attributes={"staff_totp_key": key})
    try:
        with db.engine.connect() as conn:
            stored = conn.execute(text("SELECT totp_secret_sealed FROM staff_accounts")).scalar_one()
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"version_table": models.VERSION_TABLE}),
                models.Base.metadata,
            )
        assert diff == []
        assert secret not in stored and open_sealed(key, "old-1", stored) == secret
        service = StaffService(db, key)
        token = service.login("old-1", password, pyotp.TOTP(secret).now())
        assert service.terminal(token) is not None
        with pytest.raises(BusinessError):  # the same code twice is refused, as before
            service.login("old-1", password, pyotp.TOTP(secret).now())
    finally:
        db.dispose()


def test_a_taken_login_is_a_conflict_with_a_plain_message(nation: Nation) -> None:
    """The error carries its own HTTP status and a message (not a (message, status) tuple)."""
    from kojinbango.common.errors import Conflict, NotFound
    from kojinbango.municipality.staff.service import Terminal

    service = nation.runtimes[ORG].services["staff"]
    create_staff(service, "twice-1", "二度 目", ["resident_records"])
    with pytest.raises(Conflict) as taken:
        create_staff(service, "twice-1", "二度 目", ["resident_records"])
    assert taken.value.status == 409 and str(taken.value) == "this login is already taken"
    with pytest.raises(NotFound) as missing:
        admin = Terminal("", -1, "admin", "管理者", ("admin",), False, None)
        service.set_active(admin, 999_999, False)
    assert missing.value.status == 404 and str(missing.value) == "no such staff account"
