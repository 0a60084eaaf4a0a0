"""The live case list in headless Chromium at 1366×768: a case reported through the API by
someone else appears in an open list without a reload, the counters and the still-online
panel follow, and the keyboard opens it.

The desk runs in-process (uvicorn in a thread, SQLite, the demo policy) with no worker:
the test itself moves cases as the engine would, so nothing depends on timing but the
list's own polling. Screenshots go to build/screenshots/live-list-*.png.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from desk_up import SCREENSHOTS
from inprocess import PASSWORD, Served, fresh_page, serve_desk
from playwright.sync_api import Browser, Page
from sqlalchemy import update

from workflows.store.models import Case

POLICY = Path(__file__).resolve().parents[2] / "workflows" / "data" / "demo-policy.toml"
WAIT = 20_000  # ms; the list polls every 2.5 s
SEEN = [  # what an analyst's list holds: URLs that differ only in their tails
    "http://images.quick-host.test/gallery/2026/12/07/album-0193847/photo-000123.jpg",
    "http://images.quick-host.test/gallery/2026/12/07/album-0193847/photo-000124.jpg",
    "https://files.locker.test/download.php?id=9f8e7d6c5b4a39281706&token=ab12cd34&name=x.zip",
    "http://blog.example-platform.test/2026/12/a-very-long-post-title-that-goes-on-and-on/",
    'http://x.test/<script>/"a&b',
    "http://cdn.test/" + "b" * 90 + "/tail-that-tells-them-apart.png",
]
NEW_URL = "http://late.example.test/u/8841/reported-by-someone-else.jpg"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The desk in this process with the demo policy; sue (password), al (token)."""
    with serve_desk(tmp_path_factory.mktemp("home"), TAKEDOWN_POLICY=str(POLICY)) as desk:
        yield desk


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A laptop-sized window, the size hotline analysts' desks often have."""
    with fresh_page(browser, 1366, 768, WAIT) as opened:
        yield opened


def set_case(served: Served, case_id: int, **values: object) -> None:
    """Change a stored case as the engine would."""
    with served.sessions() as session:
        session.execute(update(Case).where(Case.id == case_id).values(**values))
        session.commit()


def make_active(served: Served, case_id: int, provider: str) -> None:
    """Route a case and send its notice, as the engine would."""
    now = dt.datetime.now(dt.UTC)
    routed = {"route": "no_partner", "country": "US", "routed_at": now, "first_notice_at": now}
    set_case(served, case_id, state="active", provider=provider, **routed)


def overflowing(page: Page) -> list[str]:
    """Return the list's cells whose content is wider than the cell (cut or overlapping)."""
    found: list[str] = page.eval_on_selector_all(
        "#cases td",
        """cells => cells.filter(c => c.scrollWidth > c.clientWidth + 1)
            .map(c => c.parentElement.dataset.id + " " + c.className + ": " + c.innerText)""",
    )
    return found


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"live-list-{name}.png"), full_page=True)


def counter(page: Page, state: str) -> str:
    return page.locator(f'#counts [data-count="{state}"]').inner_text()


def test_a_case_reported_elsewhere_appears_live_and_the_keyboard_opens_it(
    served: Served, page: Page
) -> None:
    seeded = served.report(*SEEN, ref="API-1")
    make_active(served, seeded[0], "QUICK-NET")
    opened = dt.datetime.now(dt.UTC) - dt.timedelta(hours=30)
    removed = {"opened_at": opened, "removed_at": opened + dt.timedelta(minutes=754)}
    set_case(served, seeded[1], state="removed", provider="A VERY LONG NETWORK NAME, GB", **removed)
    set_case(served, seeded[2], state="needs_analyst", last_error="no abuse contact")
    page.goto(served.base + "/login")
    page.fill("#name", "sue")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(served.base + "/")
    assert counter(page, "new") == str(len(SEEN) - 3) and counter(page, "active") == "1"
    assert overflowing(page) == []
    page.wait_for_selector("#live:not(.stale)")
    shot(page, "before")
    widths = page.eval_on_selector_all("#cases thead th", "cells => cells.map(c => c.offsetWidth)")
    page.evaluate("window.stillTheSamePage = true")

    (new,) = served.report(NEW_URL, ref="API-1")
    row = page.locator(f'#cases tbody tr[data-id="{new}"]')
    row.wait_for()
    assert page.locator("#cases tbody tr").first.get_attribute("data-id") == str(new)
    assert row.locator(".url").inner_text() == NEW_URL  # text, not a link
    assert row.locator(".url a").count() == 0
    assert counter(page, "new") == str(len(SEEN) - 2)
    assert page.locator("#total-count").inner_text() == str(len(SEEN) + 1)

    row.locator("td.pick input").check()  # ticked for a bulk action: a refresh keeps it
    make_active(served, new, "LATE-HOST")  # the engine routes it: the row, counters, panel
    page.wait_for_function(
        f"""() => document.querySelector('#cases tr[data-id="{new}"] .state').textContent
            === "active" && document.querySelector('[data-count="active"]').textContent === "2"
            && document.querySelector('#online [data-online]').textContent === "2"
            && document.querySelector('#online').textContent.includes("LATE-HOST")"""
    )
    assert row.locator(".route").inner_text() == "notice the host (no partner hotline)"
    assert row.locator("td.pick input").is_checked()
    assert page.evaluate("window.stillTheSamePage") is True  # never reloaded
    after = page.eval_on_selector_all("#cases thead th", "cells => cells.map(c => c.offsetWidth)")
    assert after == widths  # the columns did not move as rows arrived
    assert overflowing(page) == []
    shot(page, "after")

    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type("jk")  # typing in the search moves nothing
    assert page.locator("#cases tr[aria-current]").count() == 0
    page.keyboard.press("Escape")
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    assert row.get_attribute("aria-current") == "true"
    assert page.locator("#cases tr[aria-current]").count() == 1
    shot(page, "keyboard")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{served.base}/cases/{new}")
    assert NEW_URL in page.locator("#case-url").inner_text()
    assert " UTC" in page.locator("ol.timeline .when").first.inner_text()
    shot(page, "opened")
