"""Alembic migrations of the case store (run by `workflows.store.db.migrate`)."""
