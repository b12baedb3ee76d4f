"""certificate desk: issued documents

Revision ID: 0001
Revises:
Create Date: 2026-11-26 06:30:00
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
        "issued_documents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("document_number", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("resident_ids", sa.JSON(), nullable=False),
        sa.Column("requester_id", sa.Integer(), nullable=True),
        sa.Column("with_my_number", sa.Boolean(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("issued_by", sa.String(length=60), nullable=False),
        sa.Column("issued_at", sa.DateTime(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issued_documents")),
        sa.UniqueConstraint("document_number", name=op.f("uq_issued_documents_document_number")),
    )
    op.create_index(op.f("ix_issued_documents_issued_at"), "issued_documents", ["issued_at"], unique=False)
    op.create_index(op.f("ix_issued_documents_sha256"), "issued_documents", ["sha256"], unique=False)


def downgrade() -> None:
    op.drop_table("issued_documents")
