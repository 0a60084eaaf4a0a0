"""Request bodies are capped before anything parses them: a stranger cannot make the desk
read a large body (413, and the bytes it read are counted at the ASGI layer); only a
signed-in user gets the larger limit of the bulk operations (the CSV upload).

The app is driven as the server would drive it: an ASGI receive() that hands out the body
in chunks, made on demand, and counts every byte the app takes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deskapp import Desk, running_desk
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.types import Message, Receive, Scope, Send

from workflows.web import csv_upload
from workflows.web.body_limit import DEFAULT, LARGER, BodyLimit

CHUNK = 64 * 1024
HUGE = 512 * 1024 * 1024  # half a GiB, never made: chunks are produced as they are read


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    with running_desk(tmp_path) as running:
        yield running


class Body:
    """A request body served to the app in chunks, counting what it takes: DATA, or HEAD
    followed by as many "a" as it takes to make SIZE bytes."""

    def __init__(self, size: int, data: bytes | None = None, head: bytes = b"") -> None:
        self.size, self.data, self.head = size, data, head
        self.taken = 0

    async def receive(self) -> Message:
        if self.taken >= self.size:
            await asyncio.sleep(3600)  # the client waits for an answer: a disconnect
        part = min(CHUNK, self.size - self.taken)
        start = self.taken
        self.taken += part
        if self.data is not None:
            chunk = self.data[start : start + part]
        else:  # never build the whole endless body
            chunk = (self.head[start : start + part] + b"a" * part)[:part]
        return {"type": "http.request", "body": chunk, "more_body": self.taken < self.size}


def call(
    app: Any, method: str, path: str, body: Body, headers: dict[str, str], declare: bool
) -> tuple[int, dict[str, str], bytes]:
    """Run one request through APP over ASGI; return status, headers and body."""
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    if declare:
        raw.append((b"content-length", str(body.size).encode()))
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": raw,
        "client": ("203.0.113.7", 40000),
        "server": ("testserver", 80),
    }
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(asyncio.wait_for(app(scope, body.receive, send), 30))
    start = next(m for m in sent if m["type"] == "http.response.start")
    answer = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, answer


FORM = {"content-type": "application/x-www-form-urlencoded"}
JSON = {"content-type": "application/json"}
MULTIPART = {"content-type": "multipart/form-data; boundary=x"}
UPLOAD = (
    b'--x\r\nContent-Disposition: form-data; name="file"; filename="u.csv"\r\n'
    b"Content-Type: text/csv\r\n\r\nurl\n"
)  # then a file that never ends
BOGUS_TOKEN = {"authorization": "Bearer tda_made-up"}
BOGUS_SESSION = {"cookie": "takedown_session=tds_made-up"}
STRANGERS = [
    pytest.param("POST", "/login", FORM, b"name=", id="sign-in-form"),
    pytest.param("POST", "/api/cases", {**JSON, **BOGUS_TOKEN}, b'{"urls": ["', id="api-report"),
    pytest.param("POST", "/api/cases/csv", {**MULTIPART, **BOGUS_TOKEN}, UPLOAD, id="csv-upload"),
    pytest.param("POST", "/report", {**FORM, **BOGUS_SESSION}, b"urls=", id="report-page"),
    pytest.param("POST", "/cases/1/note", {**FORM, **BOGUS_SESSION}, b"text=", id="case-action"),
    pytest.param("POST", "/api/users", {**JSON, **BOGUS_TOKEN}, b'{"name": "', id="add-user"),
]


@pytest.mark.parametrize("declare", [True, False], ids=["content-length", "streamed"])
@pytest.mark.parametrize(("method", "path", "headers", "head"), STRANGERS)
def test_a_stranger_cannot_make_the_desk_read_a_large_body(
    desk: Desk, method: str, path: str, headers: dict[str, str], head: bytes, declare: bool
) -> None:
    body = Body(HUGE, head=head)
    status, answer_headers, answer = call(desk.client.app, method, path, body, headers, declare)
    assert status == 413
    assert body.taken == (0 if declare else DEFAULT + CHUNK - DEFAULT % CHUNK)
    if path.startswith("/api"):
        assert answer_headers["content-type"] == "application/json"
        assert json.loads(answer)["error"] == f"the request body is larger than {DEFAULT} bytes"
    else:
        assert answer.startswith(b"the request body is larger than")


def csv_body(rows: int, padding: int) -> tuple[bytes, str]:
    """Return a multipart upload of a CSV with ROWS URLs and PADDING blank lines."""
    csv = "url,reference\n" + "".join(f"http://files.example/{n},R-{n}\n" for n in range(rows))
    csv += "\n" * padding
    boundary = "takedown-test-boundary"
    data = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="u.csv"\r\n'
        f"Content-Type: text/csv\r\n\r\n{csv}\r\n--{boundary}--\r\n"
    ).encode()
    return data, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("declare", [True, False], ids=["content-length", "streamed"])
def test_a_signed_in_user_may_upload_a_csv_over_the_default_limit(
    desk: Desk, declare: bool
) -> None:
    data, content_type = csv_body(3, DEFAULT)  # blank lines: over 256 KiB, three URLs
    headers = {"content-type": content_type, **{k.lower(): v for k, v in desk.analyst.items()}}
    body = Body(len(data), data=data)
    status, _, answer = call(desk.client.app, "POST", "/api/cases/csv", body, headers, declare)
    assert status == 201, answer[:300]
    assert [case["reference"] for case in json.loads(answer)] == ["R-0", "R-1", "R-2"]


def test_even_a_signed_in_user_is_held_to_the_csv_limit(desk: Desk) -> None:
    limit = LARGER[("POST", "/api/cases/csv")]
    assert limit > csv_upload.MAX_BYTES
    headers = {**MULTIPART, "authorization": desk.analyst["Authorization"]}
    body = Body(HUGE, head=UPLOAD)
    status, _, _ = call(desk.client.app, "POST", "/api/cases/csv", body, headers, False)
    assert status == 413 and body.taken <= limit + CHUNK


def test_a_json_report_over_the_default_limit_needs_a_good_token(desk: Desk) -> None:
    urls = [f"http://files.example/{'p' * 200}/{n}" for n in range(1500)]  # ~330 KiB
    data = json.dumps({"urls": urls}).encode()
    assert len(data) > DEFAULT
    headers = {"content-type": "application/json"}
    good = {**headers, "authorization": desk.analyst["Authorization"]}
    assert (
        call(desk.client.app, "POST", "/api/cases", Body(len(data), data=data), good, True)[0]
        == 201
    )
    bad = {**headers, "authorization": "Bearer tda_made-up"}
    assert (
        call(desk.client.app, "POST", "/api/cases", Body(len(data), data=data), bad, True)[0] == 413
    )


def test_a_content_length_that_is_not_a_number_is_refused(desk: Desk) -> None:
    headers = {**JSON, "content-length": "12x", "authorization": desk.analyst["Authorization"]}
    status, _, answer = call(desk.client.app, "POST", "/api/cases", Body(2), headers, False)
    assert (status, json.loads(answer)["error"]) == (400, "Content-Length is not a number")


@settings(max_examples=60)
@given(
    chunks=st.lists(st.integers(min_value=0, max_value=700), min_size=1, max_size=12),
    declare=st.booleans(),
)
def test_the_limit_reads_no_more_than_it_allows_whatever_the_chunks(
    chunks: list[int], declare: bool
) -> None:
    limit = 1000
    read: list[bytes] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        more = True
        while more:
            message = await receive()
            read.append(message.get("body", b""))
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def anyone(scope: Scope) -> bool:
        return False

    messages = iter(chunks)
    pulled: list[int] = []

    async def receive() -> Message:
        pulled.append(next(messages))
        more = sum(pulled) < sum(chunks)
        return {"type": "http.request", "body": b"x" * pulled[-1], "more_body": more}

    guarded = BodyLimit(app, authenticated=anyone, default=limit)
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    headers = [(b"content-length", str(sum(chunks)).encode())] if declare else []
    scope = {"type": "http", "method": "POST", "path": "/api/x", "headers": headers}
    asyncio.run(guarded(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    total = sum(chunks)
    assert status == (413 if total > limit else 200)
    if declare and total > limit:
        assert pulled == []  # refused on its Content-Length, nothing read
    assert sum(pulled[:-1]) <= limit  # the chunk that went past the limit is the last one
    assert sum(len(b) for b in read) <= limit  # and the app never saw it
