"""evidence and watch: each check's fingerprints, the case's reference, changed streaks,
vantages, what confirmed a removal, and the watch of removed URLs

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import workflows.store.models

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

CASE_COLUMNS = (
    ("evidence", sa.JSON(), True, None),
    ("changed_streak", sa.Integer(), False, "0"),
    ("gone_vantages", sa.Text(), True, None),
    ("checks_made", sa.Integer(), False, "0"),
    ("removed_by", sa.String(length=20), True, None),
    ("reappeared", sa.Integer(), False, "0"),
    ("reappeared_round", sa.Integer(), True, None),
    ("watch_until", workflows.store.models.UTCDateTime(), True, None),
    ("reopened_at", workflows.store.models.UTCDateTime(), True, None),
    ("past_rounds", sa.JSON(), True, None),
)
CHECK_COLUMNS = (
    ("content_type", sa.String(length=200)),
    ("size", sa.Integer()),
    ("pdq", sa.String(length=64)),
    ("pdq_quality", sa.Integer()),
    ("tlsh", sa.String(length=80)),
    ("text_sha256", sa.String(length=64)),
    ("vantage", sa.String(length=300)),
    ("rule", sa.Text()),
)


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("cases", schema=None) as batch_op:
        for name, type_, nullable, default in CASE_COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=nullable, server_default=default))
    with op.batch_alter_table("checks", schema=None) as batch_op:
        for name, type_ in CHECK_COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=True))
    # Removals confirmed before this revision were confirmed by status or NXDOMAIN checks.
    op.execute("UPDATE cases SET removed_by = 'status' WHERE state = 'removed'")


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("checks", schema=None) as batch_op:
        for name, _ in reversed(CHECK_COLUMNS):
            batch_op.drop_column(name)
    with op.batch_alter_table("cases", schema=None) as batch_op:
        for name, *_ in reversed(CASE_COLUMNS):
            batch_op.drop_column(name)
