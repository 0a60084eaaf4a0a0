"""`takedown inbox [FILE|-]`: take one returned message (a bounce, a reply) and act on it.

FILE is one message as an MTA delivers it (RFC 5322 bytes); `-` reads it from standard
input, so a mail server can pipe the hotline's bounce address into the command. A missing
file is bad input (exit 2); a strange message never is: it is recorded as unreadable.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from workflows.config.settings import Settings
from workflows.engine.inbox import take_message
from workflows.engine.runtime import Runtime
from workflows.errors import InputError
from workflows.notify.inbound import MAX_BYTES
from workflows.store.db import migrate


def inbox_command(settings: Settings, source: str | None, as_json: bool) -> int:
    """Take the message in SOURCE (a path, or - for stdin); print what it was and did."""
    if source is None:
        if settings.imap_url is None:
            raise InputError(
                "no mailbox configured: give FILE or - (one message on stdin), "
                "or set TAKEDOWN_IMAP_URL"
            )
        raise InputError(
            "reading TAKEDOWN_IMAP_URL is not built yet: pipe each message to `takedown inbox -`"
        )
    raw = _read(source)
    rt = Runtime.from_settings(settings)
    try:
        migrate(rt.engine)
        taken = take_message(rt, raw, "stdin" if source == "-" else "file")
    finally:
        rt.close()
    if as_json:
        print(json.dumps(vars(taken)))
    else:
        print(taken.line())
    return 0


def _read(source: str) -> bytes:
    """Read at most one byte more than a message may have (the rest is never needed)."""
    if source == "-":
        return sys.stdin.buffer.read(MAX_BYTES + 1)
    path = Path(source)
    if not path.is_file():
        raise InputError(f"{source}: no such file")
    try:
        with path.open("rb") as message:
            return message.read(MAX_BYTES + 1)
    except OSError as error:
        raise InputError(f"{source}: cannot read it: {error.strerror}") from None
