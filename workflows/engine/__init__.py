"""The workflow's stages as functions; Celery tasks that take ids; sweep, worker, broker."""
