"""the newest record each user was shown

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 15:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "portal_seen_records",
        sa.Column("subscriber_id", sa.String(length=32), nullable=False),
        sa.Column("last_index", sa.BigInteger(), nullable=False),
        sa.Column("leaf_hash", sa.String(length=64), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("subscriber_id", name=op.f("pk_portal_seen_records")),
    )


def downgrade() -> None:
    op.drop_table("portal_seen_records")
