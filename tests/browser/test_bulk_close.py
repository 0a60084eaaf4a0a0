"""A supervisor closes ten cases at once from the case list, with a reason, in headless
Chromium: tick a page, untick one, choose the reason, confirm, and read what was done.

The desk runs in-process (uvicorn in a thread, SQLite) with no worker: nothing moves but
what the test and the page do. Screenshots: build/screenshots/bulk-close-*.png.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from desk_up import SCREENSHOTS
from inprocess import PASSWORD, Served, fresh_page, serve_desk
from playwright.sync_api import Browser, Page
from sqlalchemy import select, update

from workflows.kinds import CaseState
from workflows.store.models import Case, Event

REF = "SWEEP-12"
URLS = [
    f"http://mirror{n % 3}.example.test/board/thread-{4410 + n}/image-{n:02d}.jpg"
    for n in range(12)
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The desk in this process; sue (supervisor, password), al (token)."""
    with serve_desk(tmp_path_factory.mktemp("home")) as desk:
        yield desk


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with fresh_page(browser, 1366, 900, 20_000) as opened:
        yield opened


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"bulk-close-{name}.png"), full_page=True)


def test_a_supervisor_closes_ten_cases_from_the_list_with_a_reason(
    served: Served, page: Page
) -> None:
    ids = served.report(*URLS, ref=REF)
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
