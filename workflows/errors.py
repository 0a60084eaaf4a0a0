"""Every error takedown raises on purpose, in one place.

    TakedownError              anything takedown raises on purpose; carries `permanent`
    ├── InputError             bad input from a person or a file: CLI exit 2, API 4xx;
    │   │                      nothing is changed because of it
    │   ├── FieldError         bad input at a named place (an argument, a line, a field)
    │   │   └── RowError       a CSV upload row that cannot be reported: API 422
    │   ├── BadValue           a value a desk action cannot take: API 422, field named
    │   ├── URLError           a reported URL that cannot be accepted
    │   ├── ConfigError        a bad variable, policy, hotline or CDN file (names the line)
    │   ├── Conflict           clashes with the stored state (a duplicate, a stale state):
    │   │                      API 409
    │   └── NotFound           no such case, notice, user or token: API 404
    ├── LookupFailed           a trace step that failed (DNS, ASN, RDAP); `permanent` says
    │   │                      transient  SERVFAIL, timeout, HTTP 429/5xx: worth retrying
    │   │                      permanent  NXDOMAIN, no address, RDAP 404: retrying will not help
    │   └── DNSFailure         a failed DNS lookup, with the CNAME chain seen before it
    └── EgressBlocked          a host that resolves only to addresses the re-checker may not
                               connect to (special-use, not allow-listed): permanent

`permanent` is True unless a class or a raise says otherwise: only lookups (LookupFailed,
DNSFailure) can be transient. `kind` names the error in `as_dict()`.

Edges translate their library's exceptions into these; nothing else crosses a boundary.
One exception stays private to its module: notify/mailer.py's `_SetupFailed` (STARTTLS or
AUTH could not be set up) is raised and caught inside `deliver()`, which turns it into a
`Delivery` and never raises for the network, so it never reaches any other module.
"""

from __future__ import annotations

from collections.abc import Sequence


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


class RowError(FieldError):
    """A CSV row that cannot be reported: HTTP 422 naming the row; nothing is stored."""

    def __init__(self, row: int | None, message: str) -> None:
        super().__init__("file", f"row {row}: {message}" if row else message)
        self.row = row


class BadValue(InputError):
    """A value the action cannot take (e.g. a hold ending in the past): HTTP 422, field named."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class URLError(InputError):
    """A reported URL that cannot be accepted; the message names the problem."""

    kind = "url"


class ConfigError(InputError):
    """A configuration variable or file that does not validate."""

    kind = "config"


class Conflict(InputError):
    """The request clashes with the stored state (a duplicate, a stale state): HTTP 409."""

    kind = "conflict"


class NotFound(InputError):
    """No such case, notice, user or API token: HTTP 404."""

    kind = "not_found"


class LookupFailed(TakedownError):
    """A DNS, ASN or RDAP lookup that did not give an answer."""

    kind = "lookup"

    def __init__(
        self, message: str, *, kind: str, permanent: bool, retry_after: float | None = None
    ) -> None:
        super().__init__(message, kind=kind, permanent=permanent)
        self.retry_after = retry_after


class DNSFailure(LookupFailed):
    """A failed DNS lookup, with the CNAME chain seen before it failed."""

    def __init__(
        self, message: str, *, kind: str, permanent: bool, cnames: Sequence[str] = ()
    ) -> None:
        super().__init__(message, kind=kind, permanent=permanent)
        self.cnames = list(cnames)


class EgressBlocked(TakedownError):
    """A host that resolves only to addresses the guard refuses; it is never connected to."""

    kind = "blocked"
