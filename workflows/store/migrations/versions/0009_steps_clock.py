"""the clock a case's workflow steps count from, apart from when it was routed

Bringing a step forward after a refusal (or shifting the steps past a hold) used to move
routed_at itself, so a bounced case could show a routing time before its report.
steps_from carries that clock; routed_at stays the fact. Existing cases start from
their routed_at (steps_from null means: count from routed_at).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import workflows.store.models

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("steps_from", workflows.store.models.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("steps_from")
