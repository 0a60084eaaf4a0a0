"""case statistics columns: asn, provider, purged_at

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import workflows.store.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("asn", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("provider", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column("purged_at", workflows.store.models.UTCDateTime(), nullable=True)
        )
        batch_op.create_index(batch_op.f("ix_cases_asn"), ["asn"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cases_asn"))
        batch_op.drop_column("purged_at")
        batch_op.drop_column("provider")
        batch_op.drop_column("asn")
