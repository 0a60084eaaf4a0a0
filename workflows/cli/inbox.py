"""`takedown inbox [FILE|-]`: take one returned message (a bounce, a reply) and act on it;
with neither, read TAKEDOWN_IMAP_URL once.

FILE is one message as an MTA delivers it (RFC 5322 bytes); `-` reads it from standard
input, so a mail server can pipe the hotline's bounce address into the command. A missing
file is bad input (exit 2); a strange message never is: it is recorded as unreadable.
"""

from __future__ import annotations

import json
import sys
from imaplib import IMAP4
from pathlib import Path

from imap_tools import MailboxLoginError

from workflows.config.settings import Settings
from workflows.engine.inbox import poll_mailbox, take_message
from workflows.engine.runtime import Runtime
from workflows.errors import InputError
from workflows.notify.inbound import MAX_BYTES
from workflows.store.db import require_schema, upgrades_itself


def inbox_command(settings: Settings, source: str | None, as_json: bool) -> int:
    """Take the message in SOURCE (a path, or - for stdin); print what it was and did."""
    if source is None and settings.imap_url is None:
        raise InputError(
            "no mailbox configured: give FILE or - (one message on stdin), or set TAKEDOWN_IMAP_URL"
        )
    raw = _read(source) if source is not None else b""
    rt = Runtime.from_settings(settings)
    try:
        _ = rt.imap  # a bad TAKEDOWN_IMAP_URL is bad input: exit 2 before anything changes
        require_schema(rt.engine, upgrade=upgrades_itself(rt.engine))
        if source is None:
            try:
                all_taken = poll_mailbox(rt)
            except (OSError, IMAP4.error, MailboxLoginError) as error:
                print(f"takedown: cannot read {settings.imap_url}: {error}", file=sys.stderr)
                return 1
        else:
            all_taken = [take_message(rt, raw, "stdin" if source == "-" else "file")]
    finally:
        rt.close()
    for taken in all_taken:
        print(json.dumps(vars(taken)) if as_json else taken.line())
    if source is None and not as_json:
        print(f"{len(all_taken)} new message(s) in the mailbox")
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
