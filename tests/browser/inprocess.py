"""The desk in this test process, and Debian's Chromium, for the browser tests.

`serve_desk` runs the web app with uvicorn in a thread on SQLite (no worker: nothing moves
but what the test and the page do), with a supervisor `sue` who signs in with PASSWORD and
an analyst `al` whose API token reports cases. `chromium` launches the browser, headless.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from desk_up import free_port
from playwright.sync_api import Browser, Page, sync_playwright
from sqlalchemy.orm import Session, sessionmaker

from workflows.config.settings import load_settings
from workflows.store import accounts
from workflows.web.app import create_app

PASSWORD = "correct horse battery staple"


@dataclass
class Served:
    """The desk on a port, its database and an analyst's API token."""

    base: str
    sessions: sessionmaker[Session]
    token: str

    def report(self, *urls: str, ref: str | None = None) -> list[int]:
        """Report URLS through the API as al; return the case ids."""
        body: dict[str, object] = {"urls": list(urls)}
        if ref is not None:
            body["ref"] = ref
        request = urllib.request.Request(
            self.base + "/api/cases",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 201
            return [case["id"] for case in json.loads(answer.read())]


@contextmanager
def serve_desk(home: Path, **env: str) -> Iterator[Served]:
    """Serve the app on a free port with TAKEDOWN_HOME=HOME and ENV; sue and al exist."""
    app = create_app(load_settings({"TAKEDOWN_HOME": str(home), **env}))
    sessions = app.state.sessions
    with sessions() as session:
        accounts.create_user(session, "sue", "supervisor", PASSWORD)
        token = accounts.issue_token(session, accounts.create_user(session, "al", "analyst"))
        session.commit()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the desk did not start"
        time.sleep(0.05)
    try:
        yield Served(f"http://127.0.0.1:{port}", sessions, token)
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@contextmanager
def chromium() -> Iterator[Browser]:
    """Launch Debian's Chromium (never a downloaded browser), headless."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        try:
            yield launched
        finally:
            launched.close()


@contextmanager
def fresh_page(browser: Browser, width: int, height: int, timeout_ms: float) -> Iterator[Page]:
    """Open a page in a fresh context (no cookies) of WIDTH×HEIGHT; close it afterwards."""
    context = browser.new_context(viewport={"width": width, "height": height})
    opened = context.new_page()
    opened.set_default_timeout(timeout_ms)
    try:
        yield opened
    finally:
        context.close()
