"""A supervisor closes ten cases at once from the case list, with a reason, in headless
Chromium: tick a page, untick one, choose the reason, confirm, and read what was done.

The desk runs in-process (uvicorn in a thread, SQLite) with no worker: nothing moves but
what the test and the page do. Screenshots: build/screenshots/bulk-close-*.png.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn
from desk_up import SCREENSHOTS, free_port
from playwright.sync_api import Browser, Page, sync_playwright
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from workflows.config.settings import load_settings
from workflows.kinds import CaseState
from workflows.store import accounts
from workflows.store.models import Case, Event
from workflows.web.app import create_app

PASSWORD = "correct horse battery staple"
REF = "SWEEP-12"
URLS = [
    f"http://mirror{n % 3}.example.test/board/thread-{4410 + n}/image-{n:02d}.jpg"
    for n in range(12)
]


@dataclass
class Served:
    """The desk on a port, its database and an analyst's API token."""

    base: str
    sessions: sessionmaker[Session]
    token: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Serve the app with uvicorn in a thread; sue (supervisor, password), al (token)."""
    home = tmp_path_factory.mktemp("home")
    app = create_app(load_settings({"TAKEDOWN_HOME": str(home)}))
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


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Launch Debian's Chromium, headless."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(20_000)
    yield opened
    context.close()


def report(served: Served, *urls: str) -> list[int]:
    """Report URLs through the API as al; return the case ids."""
    request = urllib.request.Request(
        served.base + "/api/cases",
        data=json.dumps({"urls": list(urls), "ref": REF}).encode(),
        headers={"Authorization": f"Bearer {served.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 201
        return [case["id"] for case in json.loads(answer.read())]


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"bulk-close-{name}.png"), full_page=True)


def test_a_supervisor_closes_ten_cases_from_the_list_with_a_reason(
    served: Served, page: Page
) -> None:
    ids = report(served, *URLS)
    removed, kept = ids[3], ids[0]  # removed already (the engine confirmed it); left open
    with served.sessions() as session:
        session.execute(
            update(Case).where(Case.id == removed).values(state=CaseState.REMOVED, open_key=None)
        )
        session.commit()
    page.goto(served.base + "/login")
    page.fill("#name", "sue")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(served.base + "/")
    page.goto(f"{served.base}/?ref={REF}")

    page.check("#pick-all")  # the page's twelve
    page.locator(f'#cases tr[data-id="{kept}"] td.pick input').uncheck()
    assert page.locator("#picked-count").inner_text() == "(11 ticked)"
    assert page.locator("#pick-all").evaluate("box => box.indeterminate")
    assert page.locator("#bulk-code").is_hidden()  # only the chosen action's fields show
    page.select_option("#bulk-action", "close")
    page.select_option("#bulk-code", "duplicate")
    page.fill("#bulk-reason", "copies of case 4402, reported by the same source")
    assert page.locator("#bulk-days").is_hidden()
    assert page.locator("#bulk-confirm-text").inner_text() == "I confirm: close 11 cases"
    page.check("#bulk-confirm")
    shot(page, "bar")

    page.click("#bulk-apply")
    page.wait_for_url(lambda url: "flash=" in url)
    flash = page.locator(".flash.ok").inner_text()
    assert flash == f"Closed 10 cases, skipped 1 (case {removed} is removed, not open)."
    assert page.url.startswith(f"{served.base}/?ref={REF}&")  # back on the same list
    states = dict(
        page.eval_on_selector_all(
            "#cases tbody tr", "rows => rows.map(r => [Number(r.dataset.id), r.dataset.state])"
        )
    )
    assert states == {
        i: "new" if i == kept else "removed" if i == removed else "closed" for i in ids
    }
    assert page.locator("#cases td.pick input:checked").count() == 0
    shot(page, "done")

    with served.sessions() as session:
        closed = session.execute(
            select(Event.case_id, Event.actor, Event.detail).where(Event.kind == "closed")
        ).all()
    reason = {"code": "duplicate", "reason": "copies of case 4402, reported by the same source"}
    assert sorted(closed) == sorted(
        (i, "sue", {**reason, "was": "new"}) for i in ids if i not in (kept, removed)
    )
    page.click(f'#cases tr[data-id="{ids[1]}"] td.id a')
    entry = page.locator("ol.timeline li.k-closed")
    assert " ".join(entry.inner_text().split()) == (
        f"{entry.locator('.when').inner_text()} Closed · Duplicate of another case · "
        "copies of case 4402, reported by the same source · sue"
    )
    shot(page, "case")
