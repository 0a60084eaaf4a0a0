"""The desk's operations endpoints, for load balancers, orchestrators and Prometheus.

    GET /healthz   200 {"status": "ok"} while the process answers (liveness)
    GET /readyz    200, or 503 naming the failed checks: the database answers, its schema
                   is this code's newest, a configured Redis answers (readiness)
    GET /metrics   Prometheus text format: the store's figures, series `takedown_…`

No sign-in (a probe has no token) and none needed: they carry counts and verdicts, never a
URL, a host name, a password or an exception's text. They are left out of /openapi.json,
which describes the API for its users.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from workflows.engine import health
from workflows.engine.metrics import CONTENT_TYPE, StoreCollector, exposition

router = APIRouter(include_in_schema=False)
NO_STORE = {"Cache-Control": "no-store"}


@router.get("/healthz")
def healthz() -> Response:
    """Say the process is alive."""
    return JSONResponse({"status": "ok"}, headers=NO_STORE)


@router.get("/readyz")
def readyz(request: Request) -> Response:
    """Say whether the desk can serve: 200, or 503 with the checks that failed."""
    state = request.app.state
    ready = health.as_json(health.readiness(state.engine, state.settings))
    return JSONResponse(ready, status_code=200 if not ready["failed"] else 503, headers=NO_STORE)


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Return the Prometheus exposition, read from the database and Redis now."""
    state = request.app.state
    if getattr(state, "store_collector", None) is None:
        state.store_collector = StoreCollector(state.engine, state.settings)
    body = exposition(state.store_collector)
    return Response(body, media_type=CONTENT_TYPE, headers=NO_STORE)
