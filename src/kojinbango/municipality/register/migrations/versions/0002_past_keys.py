"""旧氏名・旧住所 search keys, back-filled from the 異動履歴; an index for the birth-date search

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 09:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    past = op.create_table(
        "resident_past_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("value", sa.String(length=400), nullable=False),
        sa.Column("until", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["residents.id"], name=op.f("fk_resident_past_keys_resident_id_residents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resident_past_keys")),
    )
    with op.batch_alter_table("resident_past_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_resident_past_keys_resident_id"), ["resident_id"], unique=False)
        batch_op.create_index("ix_resident_past_keys_kind_key", ["kind", "key"], unique=False)

    with op.batch_alter_table("residents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_residents_birth_date"), ["birth_date"], unique=False)

    # Back-fill from the history already recorded (氏名変更, 転居, 転入 with a 前住所).
    from kojinbango.municipality.register.pastkeys import past_keys_of_event

    events = sa.table(
        "resident_events",
        sa.column("id", sa.Integer()),
        sa.column("resident_id", sa.Integer()),
        sa.column("event_date", sa.Date()),
        sa.column("before", sa.JSON()),
        sa.column("after", sa.JSON()),
    )
    conn = op.get_bind()
    rows: list[dict[str, object]] = []
    for rid, day, before, after in conn.execute(
        sa.select(events.c.resident_id, events.c.event_date, events.c.before, events.c.after).order_by(
            events.c.id
        )
    ):
        rows.extend(
            {"resident_id": rid, "until": day, **k} for k in past_keys_of_event(before or {}, after or {})
        )
    if rows:
        op.bulk_insert(past, rows)


def downgrade() -> None:
    with op.batch_alter_table("residents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_residents_birth_date"))
    with op.batch_alter_table("resident_past_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_resident_past_keys_kind_key")
        batch_op.drop_index(batch_op.f("ix_resident_past_keys_resident_id"))
    op.drop_table("resident_past_keys")
