"""A cap on request bodies, enforced before anything parses them (an ASGI middleware).

FastAPI reads and parses a body (JSON, a form, a multipart upload spooled to disk) before
it resolves the dependencies that check who is asking, so without a cap a stranger could
make the desk read any amount of memory or disk. Every request gets `DEFAULT`; the few
operations that take bulk input get more, and only once their credentials are known good
(a valid API token or session, looked up before the body is read):

    request                      limit            who
    anything                     256 KiB          anyone
    POST /api/cases, /report     8 MiB            a signed-in user (10,000 URLs)
    POST /api/cases/csv          5 MiB + 64 KiB   a signed-in user (the CSV's cap + form)

A Content-Length over the limit is refused at once (413, nothing read); a body streamed
without one is counted as it arrives and cut at the limit. API answers are JSON.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workflows.web import csv_upload

KIB = 1024
DEFAULT = 256 * KIB
LARGER = {
    ("POST", "/api/cases"): 8 * KIB * KIB,
    ("POST", "/report"): 8 * KIB * KIB,
    ("POST", "/api/cases/csv"): csv_upload.MAX_BYTES + 64 * KIB,
}


class _TooLarge(Exception):
    """The body went past its limit (raised from receive, inside the app)."""


class BodyLimit:
    """Refuse request bodies over their limit with 413 before the app reads them."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        authenticated: Callable[[Scope], Awaitable[bool]],
        default: int = DEFAULT,
        larger: Mapping[tuple[str, str], int] = LARGER,
    ) -> None:
        """Wrap APP; AUTHENTICATED tells whether a request's credentials are good."""
        self.app = app
        self.authenticated = authenticated
        self.default = default
        self.larger = dict(larger)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request (or pass any other ASGI event through)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        text = Headers(scope=scope).get("content-length")
        if text is not None and not text.strip().isdigit():
            await _refuse(scope, send, 400, "Content-Length is not a number")
            return
        declared = None if text is None else int(text)
        limit = self.default
        wanted = self.larger.get((scope["method"], scope["path"]))
        # Credentials are looked up only for a body that may need more than the default.
        needs_more = declared is None or declared > self.default
        if wanted is not None and needs_more and await self.authenticated(scope):
            limit = wanted
        if declared is not None and declared > limit:
            await _refuse(scope, send, 413, f"the request body is larger than {limit} bytes")
            return
        await self._counted(scope, receive, send, limit)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Run the app, counting the body it reads; past LIMIT, answer 413 instead of it."""
        received, exceeded, started = 0, False, False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise _TooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # the app's answer to a body it could not finish: ours replaces it
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            # Parsers wrap what receive raised (FastAPI makes it a 400): past the limit,
            # whatever came out of the app is ours to answer.
            if not exceeded:
                raise
        if exceeded and not started:
            await _refuse(scope, send, 413, f"the request body is larger than {limit} bytes")


async def _refuse(scope: Scope, send: Send, status: int, message: str) -> None:
    """Answer STATUS with MESSAGE: JSON {"error", "field"} under /api, plain text elsewhere."""
    if scope["path"].startswith("/api"):
        body = json.dumps({"error": message, "field": "body"}).encode()
        content_type = b"application/json"
    else:
        body, content_type = (message + "\n").encode(), b"text/plain; charset=utf-8"
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),  # the rest of the body is never read
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
