"""A fix for Celery 5.7 with kombu 5.7 on Redis: a broker outage must not kill the worker.

When the broker connection breaks, Celery's consumer first `collect()`s the connection
(detaching its transport) and then `close()`s it; closing closes the connection's default
channel, whose first act is to restore the unacknowledged messages, which needs a Redis
client, which needs the transport's connection info, gone since `collect()`: an
AttributeError that Celery reports as "Unrecoverable error" and exits on. It happens only
while tasks are in flight (acks_late: every task of ours), so a Redis restart under load
stopped the worker (tests/faults/test_redis_restart.py). A collected connection has no
usable channel: forget it, and `close()` has nothing left to break on. The unacknowledged
messages stay in Redis's unacked set, which kombu restores after the visibility timeout,
and the database's claims hand the work out again anyway.
"""

from __future__ import annotations

import functools
from typing import Any

from kombu.connection import Connection


def apply() -> None:
    """Make Connection.collect forget the default channel (once per process)."""
    original: Any = Connection.collect
    if getattr(original, "takedown_fix", False):
        return

    @functools.wraps(original)
    def collect(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            original(self, *args, **kwargs)
        finally:
            self._default_channel = None

    collect.takedown_fix = True  # type: ignore[attr-defined]
    setattr(Connection, "collect", collect)  # noqa: B010 - mypy: kombu is untyped
