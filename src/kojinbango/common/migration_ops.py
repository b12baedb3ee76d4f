"""Migration steps shared by several organisations' Alembic histories (each calls them from a
revision of its own, so each history stays complete in itself)."""

from __future__ import annotations

from alembic import op

_NONCE_COLUMNS = "signer, nonce, created, seen_at"


def key_seen_nonces(columns: tuple[str, ...]) -> None:
    """Give ``seen_nonces`` the primary key ``columns``, keeping every nonce it holds (one that a
    replay could still use must stay remembered across the migration).

    On SQLite the table is rebuilt, without a rowid when the key leads with ``created`` (the rows
    then sit in the key's order, and each new nonce goes at the table's end rather than on a random
    page of a separate index); on PostgreSQL the key constraint is replaced in place."""
    key = ", ".join(columns)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE seen_nonces DROP CONSTRAINT pk_seen_nonces")
        op.execute(f"ALTER TABLE seen_nonces ADD CONSTRAINT pk_seen_nonces PRIMARY KEY ({key})")
        return
    rowid = " WITHOUT ROWID" if columns[0] == "created" else ""
    op.execute(
        "CREATE TABLE seen_nonces_rekeyed (signer VARCHAR(40) NOT NULL, nonce VARCHAR(64) NOT NULL, "
        "created BIGINT NOT NULL, seen_at DATETIME NOT NULL, "
        f"CONSTRAINT pk_seen_nonces PRIMARY KEY ({key})){rowid}"
    )
    op.execute(f"INSERT INTO seen_nonces_rekeyed ({_NONCE_COLUMNS}) SELECT {_NONCE_COLUMNS} FROM seen_nonces")
    op.execute("DROP TABLE seen_nonces")
    op.execute("ALTER TABLE seen_nonces_rekeyed RENAME TO seen_nonces")


TIME_FIRST = ("created", "signer", "nonce")
SIGNER_FIRST = ("signer", "nonce")
