"""push notices

Revision ID: 0001
Revises:
Create Date: 2026-11-26 06:40:00
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
        "push_notices",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("title", sa.String(length=100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("conditions", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_by", sa.String(length=40), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_push_notices")),
    )
    op.create_table(
        "push_notice_deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("notice_id", sa.Integer(), nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("delivered_at", sa.DateTime(), nullable=False),
        sa.Column("read_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["notice_id"], ["push_notices.id"], name=op.f("fk_push_notice_deliveries_notice_id_push_notices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_push_notice_deliveries")),
        sa.UniqueConstraint("notice_id", "resident_id", name=op.f("uq_push_notice_deliveries_notice_id")),
    )
    op.create_index(
        op.f("ix_push_notice_deliveries_notice_id"), "push_notice_deliveries", ["notice_id"], unique=False
    )
    op.create_index(
        op.f("ix_push_notice_deliveries_resident_id"), "push_notice_deliveries", ["resident_id"], unique=False
    )
    op.create_table(
        "portal_readers",
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("resident_id", name=op.f("pk_portal_readers")),
    )


def downgrade() -> None:
    op.drop_table("portal_readers")
    op.drop_table("push_notice_deliveries")
    op.drop_table("push_notices")
