"""notice purged (the text erased past its retention period; the row stays)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 10:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("nw_notices") as batch:
        batch.add_column(sa.Column("purged_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("nw_notices") as batch:
        batch.drop_column("purged_at")
