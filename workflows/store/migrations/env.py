"""Alembic environment: migrate the connection that workflows.store.db hands over."""

from __future__ import annotations

from alembic import context

from workflows.store.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copy
)
with context.begin_transaction():
    context.run_migrations()
