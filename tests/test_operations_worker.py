"""A real `takedown worker` (prefork, JSON logs, TAKEDOWN_METRICS_PORT): its /metrics adds
up its children's latencies, /healthz and /readyz answer, every log line is JSON with the
task's case ids and no URL, `takedown health` sees it sweep, and Flower's events flow."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from celery import Celery
from engine_harness import hosta_stack, hosta_world
from prometheus_client.parser import text_string_to_metric_families

from workflows.engine.broker import embedded_url

URL = "http://files.hosta.test/ops/a.jpg"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def task_event(broker_url: str, timeout: float = 30.0) -> dict[str, Any] | None:
    """Return the first task-succeeded event the workers send once asked, as Flower asks:
    its --enable_events broadcasts `enable_events` every few seconds (workers start with
    task events off)."""
    app = Celery(broker=broker_url)
    got: list[dict[str, Any]] = []
    with app.connection_for_read() as connection:

        def stop_on_first(event: dict[str, Any]) -> None:
            got.append(event)
            receiver.should_stop = True

        receiver = app.events.Receiver(connection, handlers={"task-succeeded": stop_on_first})
        listening = threading.Thread(target=receiver.capture, kwargs={"wakeup": False})
        listening.start()
        deadline = time.monotonic() + timeout
        while listening.is_alive() and time.monotonic() < deadline:
            app.control.enable_events()
            listening.join(1.0)
        receiver.should_stop = True
        listening.join(5)
    app.close()
    return got[0] if got else None


def test_a_worker_serves_metrics_and_health_and_logs_json_lines_with_case_ids(
    tmp_path: Path,
) -> None:
    port = free_port()
    with hosta_stack(tmp_path, hosta_world(URL)) as stack:
        stack.env["TAKEDOWN_METRICS_PORT"] = str(port)
        stack.env["TAKEDOWN_LOG_FORMAT"] = "json"
        case_id = stack.report(URL)[0]["id"]
        stack.start_worker(pool="prefork")
        stack.wait_for(lambda: bool(stack.smtp.snapshot()), 60, "the first notice")
        base = f"http://127.0.0.1:{port}"
        found = samples(httpx.get(f"{base}/metrics", timeout=10).text)
        assert found[("takedown_trace_seconds_count", ())] >= 1  # from a prefork child
        assert found[("takedown_send_seconds_count", (("status", "sent"),))] == 1
        assert found[("takedown_cases", (("state", "active"),))] == 1
        assert found[("takedown_workers", ())] == 1
        assert ("takedown_queue_depth", (("queue", "takedown.checks"),)) in found
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{base}/readyz").status_code == 200
        broker = embedded_url(stack.home)
        assert broker is not None
        event = task_event(broker)
        assert event is not None and event["type"] == "task-succeeded"
        health = stack.takedown("health", "--json")
        assert health.returncode == 0, health.stdout + health.stderr
        report = json.loads(health.stdout)
        assert report["sweep"]["holder"] == report["workers"][0]["name"]
        stack.stop_worker()
        log = stack.worker_log()
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]  # all JSON
    assert any(case_id in line.get("case_ids", []) for line in lines)
    assert any(line.get("notice_ids") for line in lines)
    assert not [line for line in lines if line["level"] == "info" and "hosta.test" in str(line)]
