"""indexes that let the sweep's claims cost what they claim, not what is open

With an index on state alone, SQLite answered each claim (store/claims.py) by reading
every open case of the claimable states and sorting them, and a claim of the steps alone
(the checks queue full) read every case due for a re-check to find none: 70 ms a sweep at
100,000 open cases, every second (benchmarks, workload 2). (state, due_at) replaces the
index on state alone, which it serves as well; (state, step_due_at) finds the cases with
a workflow step due among the many due only for a re-check; (host, state, due_at)
replaces the index on host alone, for the due cases of the host names a trace claims
(with host alone, SQLite counted them by reading every case waiting to be traced);
(state, steps_done, opened_at) gives the outbox the reports still being traced from the
index alone (171 -> 8 ms a sweep with 50,000 of a report's URLs still to trace). Owed
items carry their case's report stamp (reported_at), and (notice_id, recipients, kind,
reported_at, due_at) replaces (recipients, kind, notice_id): the outbox's report wait
grouped every waiting item joined to its case each sweep (160-210 ms at 100,000).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import workflows.store.models

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index("ix_cases_state_due", ["state", "due_at"], unique=False)
        batch_op.create_index("ix_cases_state_step_due", ["state", "step_due_at"], unique=False)
        batch_op.create_index("ix_cases_host_state_due", ["host", "state", "due_at"], unique=False)
        batch_op.create_index(
            "ix_cases_state_steps_opened", ["state", "steps_done", "opened_at"], unique=False
        )
        batch_op.drop_index(batch_op.f("ix_cases_state"))
        batch_op.drop_index(batch_op.f("ix_cases_host"))
    with op.batch_alter_table("notice_items", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("reported_at", workflows.store.models.UTCDateTime(), nullable=True)
        )
        batch_op.create_index(
            "ix_notice_items_waiting",
            ["notice_id", "recipients", "kind", "reported_at", "due_at"],
            unique=False,
        )
        batch_op.drop_index("ix_notice_items_unbatched")


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("notice_items", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notice_items_unbatched", ["recipients", "kind", "notice_id"], unique=False
        )
        batch_op.drop_index("ix_notice_items_waiting")
        batch_op.drop_column("reported_at")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cases_host"), ["host"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_state"), ["state"], unique=False)
        batch_op.drop_index("ix_cases_state_steps_opened")
        batch_op.drop_index("ix_cases_host_state_due")
        batch_op.drop_index("ix_cases_state_step_due")
        batch_op.drop_index("ix_cases_state_due")
