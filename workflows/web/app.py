"""The web application: the HTTP API, the desk's pages and their static files."""

from __future__ import annotations

import datetime as dt
import importlib.util
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from workflows import __version__
from workflows.config.forms import load_forms
from workflows.config.policy import load_policy
from workflows.config.settings import Settings
from workflows.core.proxies import parse_networks
from workflows.errors import Conflict, InputError, NotFound
from workflows.store.db import (
    engine_for,
    require_schema,
    session_factory,
    upgrades_itself,
    utcnow,
)
from workflows.web import api, ops
from workflows.web.auth import SESSION_COOKIE, signed_in
from workflows.web.body_limit import BodyLimit

STATIC = Path(__file__).parent / "static"
API_PREFIX = "/api"
PAGES = "workflows.web.pages"


def create_app(settings: Settings, *, clock: Callable[[], dt.datetime] = utcnow) -> FastAPI:
    """Build the app on a database at the newest schema; CLOCK is injected by tests.

    SQLite is migrated here; an old PostgreSQL schema stops start-up (`takedown migrate`)."""
    engine = engine_for(settings)
    require_schema(engine, upgrade=upgrades_itself(engine))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(
        title="takedown",
        version=__version__,
        summary="Notice-and-takedown desk: report URLs, follow cases, act on them.",
        description=api.DESCRIPTION,
        lifespan=lifespan,
        # Swagger UI and ReDoc load scripts from a CDN: a hotline's browsers stay home.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings, app.state.engine = settings, engine
    app.state.policy = load_policy(settings.policy)  # a bad file stops start-up, naming its line
    app.state.forms = load_forms(settings.forms)  # the web-form desks, for their names
    app.state.sessions, app.state.clock = session_factory(engine), clock
    app.state.trusted_proxies = parse_networks(settings.trusted_proxies)  # web/client.py
    app.include_router(api.router)
    app.include_router(ops.router)  # /healthz, /readyz, /metrics: no sign-in
    if importlib.util.find_spec(PAGES) is not None:  # the desk's pages, when installed
        app.include_router(importlib.import_module(PAGES).router)
    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _install_error_handlers(app)
    app.add_middleware(BodyLimit, authenticated=signed_in)  # before anything reads a body
    app.middleware("http")(_credentials_first)
    app.middleware("http")(_security_headers)
    return app


async def _credentials_first(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Answer an API request that carries no credentials at all with 401 before its body is
    read: FastAPI parses JSON before it resolves dependencies, so a stranger's malformed
    body would otherwise earn a 422 that describes what the API expects."""
    has_credentials = "authorization" in request.headers or SESSION_COOKIE in request.cookies
    if request.url.path.startswith(API_PREFIX + "/") and not has_credentials:
        return JSONResponse(
            {"error": "authentication required: send 'Authorization: Bearer <token>'"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    return await call_next(request)


async def _security_headers(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Keep case URLs out of Referer headers, caches and frames."""
    response = await call_next(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if request.url.path.startswith(API_PREFIX):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def _install_error_handlers(app: FastAPI) -> None:
    """Answer every refusal as JSON {"error": …, "field": …}; send pages to /login on 401."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        is_api = request.url.path.startswith(API_PREFIX)
        if error.status_code == 401 and not is_api and request.method == "GET":
            return RedirectResponse("/login", status_code=303)
        body = error.detail if isinstance(error.detail, dict) else {"error": str(error.detail)}
        return JSONResponse(body, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(InputError)
    async def refused(request: Request, error: InputError) -> Response:
        status = 404 if isinstance(error, NotFound) else 409 if isinstance(error, Conflict) else 422
        body = {"error": error.message, "field": getattr(error, "field", None)}
        return JSONResponse(body, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> Response:
        problems = [_problem(e) for e in error.errors()]
        first = problems[0] if problems else {"field": "body", "message": "invalid request"}
        body = {
            "error": f"{first['field']}: {first['message']}",
            "field": first["field"],
            "errors": problems,
        }
        return JSONResponse(body, status_code=422)


def _problem(error: Any) -> dict[str, str]:
    """Return one validation error as {field, message}, the field as a client names it."""
    if error.get("type") == "json_invalid":  # its loc is a character position, not a field
        return {"field": "body", "message": f"invalid JSON: {error.get('ctx', {}).get('error')}"}
    return {"field": field_name(error.get("loc", ())), "message": str(error.get("msg", ""))}


def field_name(loc: Sequence[Any]) -> str:
    """Return a location like ("body", "urls", 2) as "urls[2]"."""
    parts = list(loc)
    if len(parts) > 1 and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) and name else f".{part}" if name else str(part)
    return name or "body"
