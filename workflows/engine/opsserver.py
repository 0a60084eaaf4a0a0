"""A worker's operations endpoint (TAKEDOWN_METRICS_PORT): /metrics, /healthz, /readyz.

The same answers as the web desk's (workflows/web/ops.py), from a small HTTP server on a
thread of the worker's main process: /metrics adds the latencies of the tasks this worker
ran (its prefork children's too). No sign-in, and nothing in it names a URL or a secret.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from sqlalchemy import Engine

from workflows.config.settings import Settings
from workflows.engine import health
from workflows.engine.metrics import CONTENT_TYPE, StoreCollector, exposition

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _V6Server(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Say nothing per request: Prometheus asks every few seconds."""


class OpsServer:
    """Serve /metrics, /healthz and /readyz on ADDRESS until stopped."""

    def __init__(self, address: tuple[str, int], engine: Engine, settings: Settings) -> None:
        self.engine, self.settings = engine, settings
        self.store = StoreCollector(engine, settings)
        server_class = _V6Server if ":" in address[0] else _Server
        self.server = make_server(
            address[0], address[1], self.app, server_class, handler_class=_QuietHandler
        )
        self.port = self.server.server_port
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="takedown-metrics", daemon=True
        )

    def start(self) -> OpsServer:
        """Start answering on a thread of its own."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop answering and close the socket."""
        self.server.shutdown()
        self.server.server_close()

    def close_inherited(self) -> None:
        """Close the listening socket in a forked child, which must not hold the port."""
        self.server.socket.close()

    def app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Answer one request (WSGI)."""
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _answer(start_response, "405 Method Not Allowed", {"error": "GET only"})
        if path == "/metrics":
            body = exposition(self.store)
            start_response("200 OK", [("Content-Type", CONTENT_TYPE)])
            return [body]
        if path == "/healthz":
            return _answer(start_response, "200 OK", {"status": "ok"})
        if path == "/readyz":
            ready = health.as_json(health.readiness(self.engine, self.settings))
            status = "200 OK" if ready["status"] == "ok" else "503 Service Unavailable"
            return _answer(start_response, status, ready)
        return _answer(start_response, "404 Not Found", {"error": "not found"})


def _answer(start_response: StartResponse, status: str, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Cache-Control", "no-store")])
    return [data]
