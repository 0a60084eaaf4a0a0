"""Errors shared by every part of takedown.

    TakedownError            anything takedown raises on purpose; carries `permanent`
    ├── InputError           bad input from a person or a file: CLI exit 2, API 4xx
    │   ├── URLError         a reported URL that cannot be accepted
    │   └── ConfigError      a bad variable, policy, hotline or CDN file (names the line)
    └── LookupFailed         a trace step that failed (DNS, ASN, RDAP)
        ├── transient        SERVFAIL, timeout, HTTP 429/5xx: worth retrying
        └── permanent        NXDOMAIN, no address, RDAP 404: retrying will not help

Edges translate their library's exceptions into these; nothing else crosses a boundary.
"""

from __future__ import annotations


class TakedownError(Exception):
    """Base of every error takedown raises on purpose."""

    permanent: bool = True
    kind: str = "error"

    def __init__(
        self, message: str, *, kind: str | None = None, permanent: bool | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if kind is not None:
            self.kind = kind
        if permanent is not None:
            self.permanent = permanent

    def as_dict(self) -> dict[str, object]:
        """Describe the error for JSON output and stored records."""
        return {"kind": self.kind, "permanent": self.permanent, "message": self.message}


class InputError(TakedownError):
    """Bad input from a person or a file; nothing may be changed because of it."""

    kind = "input"


class FieldError(InputError):
    """Bad input at a named place (an argument, a file line, an API field)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class URLError(InputError):
    """A reported URL that cannot be accepted; the message names the problem."""

    kind = "url"


class ConfigError(InputError):
    """A configuration variable or file that does not validate."""

    kind = "config"


class LookupFailed(TakedownError):
    """A DNS, ASN or RDAP lookup that did not give an answer."""

    kind = "lookup"

    def __init__(
        self, message: str, *, kind: str, permanent: bool, retry_after: float | None = None
    ) -> None:
        super().__init__(message, kind=kind, permanent=permanent)
        self.retry_after = retry_after
