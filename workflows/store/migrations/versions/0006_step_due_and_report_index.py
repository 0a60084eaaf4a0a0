"""step due time: when a case's next workflow step falls due, apart from its next re-check,
so the sweep hands steps and re-checks to their own queues; an index on opened_at, which
groups a report's cases for the outbox

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import workflows.store.models

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("step_due_at", workflows.store.models.UTCDateTime(), nullable=True)
        )
        batch_op.create_index("ix_cases_opened_at", ["opened_at"], unique=False)
    # Open cases look at their steps at their next due time, as before.
    op.execute("UPDATE cases SET step_due_at = due_at WHERE state = 'active'")


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_opened_at")
        batch_op.drop_column("step_due_at")
