"""How the desk's pages are rendered: one Jinja2 environment, strict headers."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from workflows.core.figures import share, span
from workflows.engine import bulk
from workflows.kinds import CLOSE_REASONS, CaseState, NoticeStatus, Role
from workflows.web.timeline import when
from workflows.web.words import STATE_WORDS, route_words, state_words, wrap_host, wrap_url

TEMPLATES = Path(__file__).parent / "templates"
# Our own scripts and styles only: a reported URL that slipped into the markup could run
# nothing and load nothing.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@cache
def environment() -> jinja2.Environment:
    """Return the pages' template environment (autoescape on, undefined names fail)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(statename=state_words, routename=route_words)
    env.filters.update(wrapurl=wrap_url, wraphost=wrap_host)
    env.filters.update(span=span, share=share, when=when)
    # The closed sets by name, so a page compares with CaseState.HELD, not a bare "held";
    # the states' words for the scripts that update a badge live (data-words).
    env.globals.update(CaseState=CaseState, NoticeStatus=NoticeStatus, STATE_WORDS=STATE_WORDS)
    # The close forms' reasons; the most cases the list's bulk bar acts on at once.
    env.globals.update(CLOSE_REASONS=CLOSE_REASONS, Role=Role, BULK_MAX=bulk.MAX_CASES)
    return env


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render TEMPLATE for the signed-in user (if any) with CONTEXT."""
    context.setdefault("messages", [])
    context.setdefault("page", "")
    html = (
        environment()
        .get_template(template)
        .render(
            user=getattr(request.state, "user", None),
            csrf_token=getattr(request.state, "csrf_token", None) or "",
            **context,
        )
    )
    response = HTMLResponse(html, status_code=status)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store"
    return response


def redirect(to: str) -> RedirectResponse:
    """Return a 303 to TO (after a POST, the browser GETs it)."""
    return RedirectResponse(to, status_code=303)
