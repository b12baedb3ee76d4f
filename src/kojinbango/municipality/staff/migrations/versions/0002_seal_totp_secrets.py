"""staff terminal: TOTP secrets sealed with the municipality's key (AES-256-GCM)

The key comes from the caller (``Database(..., migration_attributes={"staff_totp_key": key})``,
read from ``secrets/{org}/staff-totp.key``); it is never stored in the database.  Existing rows are
sealed in the same transaction as the column change.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 09:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from kojinbango.municipality.staff.vault import KEY_ATTRIBUTE, open_sealed, seal

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_accounts = sa.table(
    "staff_accounts",
    sa.column("id", sa.Integer()),
    sa.column("login", sa.String()),
    sa.column("totp_secret", sa.String()),
    sa.column("totp_secret_sealed", sa.String()),
)


def _key(rows: int) -> bytes | None:
    key = context.config.attributes.get(KEY_ATTRIBUTE)
    if key is None and rows:
        raise RuntimeError(
            "sealing the staff TOTP secrets needs the municipality's key: open the database with "
            "kojinbango.municipality.app.open_database (secrets/{org}/staff-totp.key)"
        )
    return key


def upgrade() -> None:
    conn = op.get_bind()
    # read and check before any DDL: SQLite commits an ALTER TABLE at once
    rows = conn.execute(sa.select(_accounts.c.id, _accounts.c.login, _accounts.c.totp_secret)).all()
    key = _key(len(rows))
    with op.batch_alter_table("staff_accounts") as batch:
        batch.add_column(sa.Column("totp_secret_sealed", sa.String(length=200), nullable=True))
    for id_, login, secret in rows:
        assert key is not None
        conn.execute(
            _accounts.update()
            .where(_accounts.c.id == id_)
            .values(totp_secret_sealed=seal(key, login, secret))
        )
    with op.batch_alter_table("staff_accounts") as batch:
        batch.alter_column("totp_secret_sealed", existing_type=sa.String(length=200), nullable=False)
        batch.drop_column("totp_secret")


def downgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(_accounts.c.id, _accounts.c.login, _accounts.c.totp_secret_sealed)).all()
    key = _key(len(rows))
    with op.batch_alter_table("staff_accounts") as batch:
        batch.add_column(sa.Column("totp_secret", sa.String(length=64), nullable=True))
    for id_, login, sealed in rows:
        assert key is not None
        conn.execute(
            _accounts.update()
            .where(_accounts.c.id == id_)
            .values(totp_secret=open_sealed(key, login, sealed))
        )
    with op.batch_alter_table("staff_accounts") as batch:
        batch.alter_column("totp_secret", existing_type=sa.String(length=64), nullable=False)
        batch.drop_column("totp_secret_sealed")
