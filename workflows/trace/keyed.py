"""One lock per key, for lookups that one thread at a time should make.

A thread that waited for the lookup before it finds that answer in a cache instead of
asking again: RDAP per registry (trace/rdap.py), registrar RDAP per server
(trace/registrar.py), DNS per name and type (trace/dns.py). A key's lock goes when
nobody holds or waits for it, so keys without bound (DNS names) leave nothing behind.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterator
from contextlib import contextmanager


class KeyedLocks:
    """Locks made on first use of a key and dropped when the last user lets go."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[threading.Lock, list[int]]] = {}
        self._guard = threading.Lock()

    @contextmanager
    def hold(self, key: Hashable) -> Iterator[None]:
        """Hold KEY's lock for the block, waiting while another thread holds it."""
        with self._guard:
            lock, users = self._locks.setdefault(key, (threading.Lock(), [0]))
            users[0] += 1
        try:
            with lock:
                yield
        finally:
            with self._guard:
                users[0] -= 1
                if not users[0]:
                    del self._locks[key]

    def __len__(self) -> int:
        """Return how many keys are held or waited for now."""
        with self._guard:
            return len(self._locks)
