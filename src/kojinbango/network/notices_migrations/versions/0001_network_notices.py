"""network notices (お知らせ held per person)

Revision ID: 0001
Revises:
Create Date: 2026-11-26 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "nw_notices",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sender", sa.String(length=40), nullable=False),
        sa.Column("sender_ref", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("read_at", sa.DateTime(), nullable=True),
        sa.Column("read_reported_at", sa.DateTime(), nullable=True),
        sa.Column("report_attempts", sa.Integer(), nullable=False),
        sa.Column("next_report_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.String(length=400), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nw_notices")),
        sa.UniqueConstraint("sender", "sender_ref", name=op.f("uq_nw_notices_sender")),
    )
    op.create_index(op.f("ix_nw_notices_person_id"), "nw_notices", ["person_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_nw_notices_person_id"), table_name="nw_notices")
    op.drop_table("nw_notices")
