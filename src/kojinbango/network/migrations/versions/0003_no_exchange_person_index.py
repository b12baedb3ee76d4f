"""exchanges: no index on person_id

Nothing looks exchanges up by person (a resident's records are found through the log's own
``log_entries.person_id``), and the index cost every exchange a write to a random page of it: about
6 KB of WAL and checkpoint per exchange at the network (measured with the index on log_entries too:
12 KB for both), on a disk where checkpoints under load stalled the writers.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 02:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("exchanges", schema=None) as batch_op:
        batch_op.drop_index("ix_exchanges_person_id")


def downgrade() -> None:
    with op.batch_alter_table("exchanges", schema=None) as batch_op:
        batch_op.create_index("ix_exchanges_person_id", ["person_id"], unique=False)
