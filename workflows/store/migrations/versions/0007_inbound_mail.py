"""inbound mail: each notice's return-path token (VERP), the messages read from the
mailbox or a pipe (by digest, so each counts once) and the recipients that hard-bounced

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import workflows.store.models

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("return_token", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint("uq_notices_return_token", ["return_token"])
    op.create_table(
        "inbound_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("mailbox_uid", sa.String(length=64), nullable=True),
        sa.Column("received_at", workflows.store.models.UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("notice_id", sa.Integer(), nullable=True),
        sa.Column("sender", sa.String(length=320), nullable=True),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("digest"),
    )
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.create_index("ix_inbound_messages_kind", ["kind"], unique=False)
        batch_op.create_index("ix_inbound_messages_mailbox_uid", ["mailbox_uid"], unique=False)
        batch_op.create_index("ix_inbound_messages_notice_id", ["notice_id"], unique=False)
    op.create_table(
        "dead_recipients",
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("until", workflows.store.models.UTCDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("notice_id", sa.Integer(), nullable=True),
        sa.Column("recorded_at", workflows.store.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("address"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("dead_recipients")
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_messages_notice_id")
        batch_op.drop_index("ix_inbound_messages_mailbox_uid")
        batch_op.drop_index("ix_inbound_messages_kind")
    op.drop_table("inbound_messages")
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.drop_constraint("uq_notices_return_token", type_="unique")
        batch_op.drop_column("return_token")
