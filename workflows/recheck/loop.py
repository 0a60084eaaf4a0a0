"""One event loop per process for every re-check: hundreds at once, polite to each host.

A worker's tasks hand their fetches to the loop (`submit`, from any thread) and wait for
the futures they get back, within their time budget; a fetch still running past it is
cancelled. Two gates bound the fetches in flight:

    per host     at most `per_host` at once to one host name (TAKEDOWN_FETCH_PER_HOST)
    overall      at most `overall` at once in the process (TAKEDOWN_FETCH_PARALLEL)

A fetch takes its host's gate before the overall one, so fetches queued behind a busy
host never hold the slots others could use. Name resolution and fingerprinting run on
the loop's small thread pool (`io_threads`), the sockets on the loop itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from workflows.recheck.egress import Resolutions
from workflows.recheck.fetch import Fetcher, FetchResult

PER_HOST = 4
OVERALL = 200
IO_THREADS = 16  # resolutions and fingerprints in flight; each waits briefly or works briefly


def host_of(url: str) -> str:
    """Return the host name a fetch of URL connects to first, lower-cased ("" if none)."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


class FetchLoop:
    """An event loop on a thread of its own that runs fetches, bounded per host and overall."""

    def __init__(
        self,
        per_host: int = PER_HOST,
        overall: int = OVERALL,
        io_threads: int = IO_THREADS,
        observe: Callable[[FetchResult, float], None] | None = None,
    ) -> None:
        """Start the loop's thread; OBSERVE hears each fetch's result and seconds taken."""
        self.observe = observe
        if min(per_host, overall, io_threads) < 1:
            raise ValueError("per_host, overall and io_threads must be at least 1")
        self.per_host = per_host
        self.overall = overall
        self._executor = ThreadPoolExecutor(io_threads, thread_name_prefix="takedown-fetch-io")
        self.loop = asyncio.new_event_loop()
        self.loop.set_default_executor(self._executor)
        self._overall = asyncio.Semaphore(overall)
        self._gates: dict[str, asyncio.Semaphore] = {}
        self._waiting: Counter[str] = Counter()  # fetches holding or awaiting each host's gate
        self._active: Counter[str] = Counter()  # fetches past both gates, per host
        self.peak_per_host = 0  # the most fetches seen at once to one host
        self.peak = 0  # the most fetches seen at once in all
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="takedown-fetch-loop", daemon=True
        )
        self._thread.start()

    def submit(
        self, fetcher: Fetcher, url: str, resolutions: Resolutions | None = None
    ) -> concurrent.futures.Future[FetchResult]:
        """Fetch URL with FETCHER on the loop; return a future (cancel it to give up).

        RESOLUTIONS: the batch's shared memo of resolved names (`Fetcher.resolutions`)."""
        work = self._bounded(fetcher, url, resolutions)
        return asyncio.run_coroutine_threadsafe(work, self.loop)

    async def _bounded(
        self, fetcher: Fetcher, url: str, resolutions: Resolutions | None
    ) -> FetchResult:
        """Run one fetch once its host's gate and the overall gate let it through."""
        host = host_of(url)
        gate = self._gates.get(host)
        if gate is None:
            gate = self._gates[host] = asyncio.Semaphore(self.per_host)
        self._waiting[host] += 1
        try:
            async with gate, self._overall:
                self._active[host] += 1
                self.peak_per_host = max(self.peak_per_host, self._active[host])
                self.peak = max(self.peak, self._active.total())
                started = time.monotonic()  # past both gates: the fetch's own time
                try:
                    result = await fetcher.afetch(url, resolutions)
                    if self.observe is not None:
                        self.observe(result, time.monotonic() - started)
                    return result
                finally:
                    self._active[host] -= 1
                    if not self._active[host]:
                        del self._active[host]
        finally:
            self._waiting[host] -= 1
            if not self._waiting[host]:  # nobody holds or awaits it: forget the host
                del self._waiting[host]
                self._gates.pop(host, None)

    def close(self) -> None:
        """Cancel what is running, stop the loop and its threads."""
        if not self.loop.is_running():
            return

        def _cancel_all() -> None:
            for task in asyncio.all_tasks(self.loop):
                task.cancel()
            self.loop.call_soon(self.loop.stop)

        self.loop.call_soon_threadsafe(_cancel_all)
        self._thread.join(timeout=10)
        if not self.loop.is_running():
            self.loop.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
