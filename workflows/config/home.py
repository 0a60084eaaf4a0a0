"""The state directory (TAKEDOWN_HOME) and its files, readable by their owner only.

The home holds live URLs, password hashes and the broker's data: it is created 0700 and
the files takedown creates there (the SQLite database, its lock, the logs) 0600, whatever
the umask says. The mode is given at creation (never wider than asked for) and set again
with chmod, because the umask can only take bits away: with umask 0 a plain mkdir would
leave the folder open to every local user.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create PATH (and missing parents) if needed; a folder created here is made 0700.

    A folder that already exists keeps its mode: the operator may have chosen it.
    """
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir(mode=DIR_MODE)
        except FileExistsError:  # another process made it first: it set the mode
            return path
        path.chmod(DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create PATH if missing, and make it 0600 (ours: the database, a lock, a log).

    An existing file is never opened, only chmod-ed by name: closing any descriptor of a
    SQLite database drops every POSIX lock this process holds on it (fcntl semantics), so
    a second connection's open-and-close would let two writers in at once and corrupt it.
    """
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        if stat.S_IMODE(os.stat(path).st_mode) != FILE_MODE:
            os.chmod(path, FILE_MODE)
        return path
    try:
        os.fchmod(descriptor, FILE_MODE)  # the umask may have taken bits off the mode
    finally:
        os.close(descriptor)
    return path
