"""Read the hotline's mailbox of bounces and replies (TAKEDOWN_IMAP_URL) with imap-tools.

    imaps://user@host[:port]/FOLDER     implicit TLS (port 993)
    imap://user@host[:port]/FOLDER?starttls=1    STARTTLS required (port 143)
    imap://user@host[:port]/FOLDER      plain: loopback only (a test server, a local relay)

The password comes from TAKEDOWN_IMAP_PASSWORD or its _FILE (or the URL). Each message
is taken once: read_mailbox hands every message not yet marked with the keyword
$TakedownRead to TAKE, and marks it only after TAKE returned (its effects committed). A
crash in between leaves it unmarked; the next read hands it over again, and the store's
digest key makes that a no-op. Messages are never deleted or marked \\Seen: people may
read the same mailbox. At most MAX_BYTES of a message are fetched (BODY.PEEK partial).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from imap_tools import BaseMailBox, MailBox, MailBoxStartTls, MailBoxUnencrypted

from workflows.errors import ConfigError
from workflows.notify.inbound import MAX_BYTES

VARIABLE = "TAKEDOWN_IMAP_URL"
READ = "$TakedownRead"  # the keyword a message gets once it was taken
_LOOPBACK = ("localhost", "127.0.0.1", "::1")
Take = Callable[[str, bytes], object]  # (mailbox uid "validity:uid", raw bytes)


@dataclass(frozen=True, repr=False)
class IMAPSettings:
    """Where the mailbox is and how to log in."""

    host: str
    port: int
    security: Literal["tls", "starttls", "plain"]
    username: str
    password: str
    folder: str = "INBOX"
    timeout: float = 30.0

    def __repr__(self) -> str:
        return (
            f"IMAPSettings(host={self.host!r}, port={self.port}, security={self.security!r}, "
            f"username={self.username!r}, password='***', folder={self.folder!r})"
        )


def parse_imap_url(url: str, password: str | None = None) -> IMAPSettings:
    """Parse TAKEDOWN_IMAP_URL; PASSWORD (TAKEDOWN_IMAP_PASSWORD or _FILE) wins over the URL's."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ConfigError(f"{VARIABLE}: bad host or port") from None
    if parts.scheme not in ("imap", "imaps") or not parts.hostname:
        raise ConfigError(f"{VARIABLE}: must look like imaps://user@host/FOLDER")
    if not parts.username:
        raise ConfigError(f"{VARIABLE}: names no user, like imaps://user@host/FOLDER")
    options = dict(parse_qsl(parts.query))
    starttls = options.pop("starttls", "0") in ("1", "true", "yes")
    if options:
        raise ConfigError(f"{VARIABLE}: unknown option {sorted(options)[0]!r} (known: starttls)")
    security: Literal["tls", "starttls", "plain"] = (
        "tls" if parts.scheme == "imaps" else "starttls" if starttls else "plain"
    )
    secret = password if password is not None else unquote(parts.password or "")
    if not secret:
        raise ConfigError(f"{VARIABLE}: no password: set TAKEDOWN_IMAP_PASSWORD or its _FILE")
    if security == "plain" and parts.hostname not in _LOOPBACK:
        raise ConfigError(
            f"{VARIABLE}: plain imap:// only to this machine; use imaps:// or ?starttls=1"
        )
    return IMAPSettings(
        host=parts.hostname,
        port=port or (993 if security == "tls" else 143),
        security=security,
        username=unquote(parts.username),
        password=secret,
        folder=unquote(parts.path.strip("/")) or "INBOX",
    )


def read_mailbox(settings: IMAPSettings, take: Take) -> int:
    """Hand every message not yet taken to TAKE, marking each after; return how many."""
    taken = 0
    with _open(settings).login(settings.username, settings.password, settings.folder) as box:
        validity = box.folder.status(settings.folder, ["UIDVALIDITY"]).get("UIDVALIDITY", 0)
        for uid in box.uids(f"UNKEYWORD {READ}"):
            raw = _fetch(box, uid)
            if raw is None:
                continue  # expunged meanwhile
            take(f"{validity}:{uid}", raw)
            box.flag(uid, READ, True)
            taken += 1
    return taken


def _open(settings: IMAPSettings) -> BaseMailBox:
    """Connect as SETTINGS say (certificates verified: no option turns that off)."""
    if settings.security == "tls":
        return MailBox(settings.host, settings.port, settings.timeout, ssl_context=_context())
    if settings.security == "starttls":
        return MailBoxStartTls(
            settings.host, settings.port, settings.timeout, ssl_context=_context()
        )
    return MailBoxUnencrypted(settings.host, settings.port, settings.timeout)


def _context() -> ssl.SSLContext:
    return ssl.create_default_context()


def _fetch(box: BaseMailBox, uid: str) -> bytes | None:
    """Return at most MAX_BYTES + 1 bytes of message UID (one more tells it is too big)."""
    status, data = box.client.uid("FETCH", uid, f"(BODY.PEEK[]<0.{MAX_BYTES + 1}>)")
    if status != "OK":
        return None
    for item in data:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
            return item[1]
    return None
