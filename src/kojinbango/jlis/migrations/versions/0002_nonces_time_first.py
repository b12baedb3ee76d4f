"""seen_nonces keyed by time first (see kojinbango.common.db.nonce_table)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 16:00:00
"""

from collections.abc import Sequence

from kojinbango.common.migration_ops import SIGNER_FIRST, TIME_FIRST, key_seen_nonces

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    key_seen_nonces(TIME_FIRST)


def downgrade() -> None:
    key_seen_nonces(SIGNER_FIRST)
