"""notice failed (refused for good by the network: no more attempts, reported to the tenant);
the texts of notices the network already took are blanked

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
    with op.batch_alter_table("im_notices") as batch:
        batch.add_column(sa.Column("failed_at", sa.DateTime(), nullable=True))
    # copies the network already holds: only their metadata stays here from now on
    op.execute("UPDATE im_notices SET title = '', body = '' WHERE forwarded_at IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("im_notices") as batch:
        batch.drop_column("failed_at")
