"""notice failed (a copy refused for good on the way: 送達不能, sent by letter instead)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 10:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("push_notice_deliveries") as batch:
        batch.add_column(sa.Column("failed_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("push_notice_deliveries") as batch:
        batch.drop_column("failed_at")
