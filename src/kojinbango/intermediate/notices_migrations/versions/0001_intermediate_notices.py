"""intermediate notices (お知らせ store and forward)

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
        "im_notices",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant", sa.String(length=40), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("integrated_number", sa.String(length=20), nullable=False),
        sa.Column("title", sa.String(length=100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("forwarded_at", sa.DateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.String(length=400), nullable=False),
        sa.Column("read_at", sa.DateTime(), nullable=True),
        sa.Column("read_collected_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_im_notices")),
        sa.UniqueConstraint("tenant", "ref", name=op.f("uq_im_notices_tenant")),
    )
    op.create_index(op.f("ix_im_notices_forwarded_at"), "im_notices", ["forwarded_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_im_notices_forwarded_at"), table_name="im_notices")
    op.drop_table("im_notices")
