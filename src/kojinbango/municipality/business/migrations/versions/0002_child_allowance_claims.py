"""child allowance claims taken at the counter (児童手当 認定請求)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 09:10:00
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
        "child_allowance_claims",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("recipient_record_id", sa.Integer(), nullable=False),
        sa.Column("child_record_id", sa.Integer(), nullable=False),
        sa.Column("allowance_id", sa.Integer(), nullable=False),
        sa.Column("bank_account_id", sa.Integer(), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("income_year", sa.SmallInteger(), nullable=False),
        sa.Column("declared_income", sa.BigInteger(), nullable=False),
        sa.Column("staff", sa.String(length=40), nullable=False),
        sa.Column("purpose", sa.String(length=60), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["recipient_record_id"],
            ["business_records.id"],
            name=op.f("fk_child_allowance_claims_recipient_record_id_business_records"),
        ),
        sa.ForeignKeyConstraint(
            ["child_record_id"],
            ["business_records.id"],
            name=op.f("fk_child_allowance_claims_child_record_id_business_records"),
        ),
        sa.ForeignKeyConstraint(
            ["allowance_id"],
            ["child_allowances.id"],
            name=op.f("fk_child_allowance_claims_allowance_id_child_allowances"),
        ),
        sa.ForeignKeyConstraint(
            ["bank_account_id"],
            ["bank_accounts.id"],
            name=op.f("fk_child_allowance_claims_bank_account_id_bank_accounts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_child_allowance_claims")),
    )
    op.create_index(
        op.f("ix_child_allowance_claims_recipient_record_id"),
        "child_allowance_claims",
        ["recipient_record_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_child_allowance_claims_recipient_record_id"), table_name="child_allowance_claims")
    op.drop_table("child_allowance_claims")
