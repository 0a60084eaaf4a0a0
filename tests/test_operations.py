"""Operations in-process: `takedown migrate`, workers refusing an old schema, /healthz,
/readyz, /metrics, `takedown health`, JSON logs and the sample Grafana dashboard."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import logging
import re
import signal
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.config import Config
from conftest import SERVICE_URLS
from deskapp import Desk, running_desk
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from workflows.cli.main import main
from workflows.cli.ops import health_report
from workflows.config.settings import load_settings
from workflows.engine import health, metrics
from workflows.engine.broker import Broker, SweepLock
from workflows.engine.logs import HideQuery, JSONFormatter, configure_logging, log_context
from workflows.engine.tasks import app as celery_app
from workflows.errors import ConfigError
from workflows.store.db import (
    database_url,
    head_revision,
    make_engine,
    migrate,
    opened_store,
    require_schema,
    schema_revision,
    upgrades_itself,
)
from workflows.store.models import Base, Case
from workflows.web.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's note on httpx2, as in deskapp
    from fastapi.testclient import TestClient

DASHBOARD = Path(__file__).parent.parent / "deploy" / "grafana-dashboard.json"
A = "http://files.example/a.jpg"


def run(argv: list[str]) -> tuple[int, str, str]:
    """Run the command line in-process; return its exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = int(exit_.code or 0)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every command at a fresh embedded home (SQLite, no Redis running)."""
    for name in ("TAKEDOWN_DATABASE_URL", "TAKEDOWN_REDIS_URL", "TAKEDOWN_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TAKEDOWN_HOME", str(tmp_path))
    monkeypatch.setenv("TAKEDOWN_SENDER", "reports@hotline.example")
    return tmp_path


def sqlite(home: Path) -> Engine:
    return make_engine(f"sqlite:///{home / 'takedown.db'}")


def downgrade(engine: Engine, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", "workflows.store:migrations")
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


# --- takedown migrate, and who migrates ---------------------------------------------------


def test_migrate_says_from_which_revision_to_which_and_then_that_nothing_is_left(
    home: Path,
) -> None:
    code, out, err = run(["migrate"])
    assert (code, err) == (0, "")
    assert f"from revision none (empty) to {head_revision()}" in out
    engine = sqlite(home)
    downgrade(engine, "0005")
    code, out, _ = run(["migrate"])
    assert code == 0 and f"from revision 0005 to {head_revision()}" in out
    code, out, _ = run(["migrate"])
    assert code == 0 and "nothing to do" in out and schema_revision(engine) == head_revision()
    engine.dispose()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql://takedown:s3cret@db.example:port/takedown", "not a database URL"),
        ("mysql://takedown:s3cret@db.example/takedown", "not a database takedown can use"),
        ("nonsense", "not a database URL"),
    ],
)
def test_migrate_refuses_a_bad_database_url_with_one_line(
    home: Path, monkeypatch: pytest.MonkeyPatch, url: str, problem: str
) -> None:
    monkeypatch.setenv("TAKEDOWN_DATABASE_URL", url)
    code, out, err = run(["migrate"])
    assert code == 2 and out == "" and err.count("\n") == 1
    assert problem in err and "TAKEDOWN_DATABASE_URL" in err and "s3cret" not in err


def refused_worker() -> tuple[int, str, str]:
    """Run `takedown worker` in-process, which must stop before starting anything."""
    before = signal.getsignal(signal.SIGTERM)
    try:
        return run(["worker"])
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_worker_refuses_an_old_schema_with_one_line_and_starts_nothing(home: Path) -> None:
    engine = sqlite(home)
    migrate(engine)
    downgrade(engine, "0006")
    code, out, err = refused_worker()
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert "revision 0006" in err and "run `takedown migrate`" in err
    assert schema_revision(engine) == "0006"  # not migrated behind the others' backs
    assert not (home / "redis").exists()
    engine.dispose()


def test_a_worker_refuses_a_schema_newer_than_it_knows(home: Path) -> None:
    engine = sqlite(home)
    migrate(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    code, _, err = refused_worker()
    assert code == 2 and "9999, newer than this takedown's" in err
    code, _, err = run(["migrate"])
    assert code == 2 and "newer" in err
    engine.dispose()


def test_only_sqlite_migrates_itself_and_postgresql_waits_for_takedown_migrate(
    home: Path,
) -> None:
    engine = sqlite(home)
    assert upgrades_itself(engine)
    with pytest.raises(ConfigError, match=r"empty .*run `takedown migrate` first"):
        require_schema(engine, upgrade=False)
    require_schema(engine, upgrade=True)
    assert schema_revision(engine) == head_revision()
    engine.dispose()
    postgres = make_engine("postgresql://takedown@127.0.0.1/takedown")  # never connected
    assert not upgrades_itself(postgres)
    postgres.dispose()


BACKENDS = ["sqlite"] + (["postgresql"] if SERVICE_URLS["database"] else [])


def fresh_database(backend: str, home: Path) -> str | None:
    """Return an empty database's URL (None: the embedded SQLite of HOME, not created yet)."""
    if backend == "sqlite":
        return None
    url = str(SERVICE_URLS["database"])
    engine = make_engine(database_url(url, home))
    with engine.begin() as connection:
        Base.metadata.drop_all(connection)
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()
    return url


@pytest.mark.parametrize("backend", BACKENDS)
def test_sqlite_migrates_itself_and_postgresql_waits_for_takedown_migrate(
    home: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    url = fresh_database(backend, home)
    if url is not None:
        monkeypatch.setenv("TAKEDOWN_DATABASE_URL", url)
    engine = make_engine(database_url(url, home))
    code, out, err = run(["report", "--json", A])
    if backend == "sqlite":  # the quick start: no extra step
        assert code == 0 and json.loads(out)[0]["state"] == "new", err
    else:
        assert code == 2 and "run `takedown migrate` first" in err and err.count("\n") == 1
        assert schema_revision(engine) is None
        assert run(["migrate"])[0] == 0 and run(["report", A])[0] == 0
    assert schema_revision(engine) == head_revision()
    engine.dispose()


# --- /healthz, /readyz, /metrics on the desk ---------------------------------------------


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    with running_desk(tmp_path) as running:
        yield running


def test_healthz_and_readyz_answer_without_a_token(desk: Desk) -> None:
    alive = desk.client.get("/healthz")
    assert (alive.status_code, alive.json()) == (200, {"status": "ok"})
    ready = desk.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"
    assert set(ready.json()["checks"]) == {"database", "schema"}  # no Redis configured
    assert ready.headers["cache-control"] == "no-store"


def test_readyz_says_503_and_which_check_failed_when_the_schema_is_old(desk: Desk) -> None:
    with desk.sessions() as session, session.begin():
        session.execute(text("UPDATE alembic_version SET version_num = '0005'"))
    ready = desk.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["failed"] == ["schema"] and "takedown migrate" in ready.text


def test_readyz_names_an_unreachable_redis_without_its_address(tmp_path: Path) -> None:
    secret_url = "redis://:hunter2@127.0.0.1:1/0"  # nothing listens on port 1
    settings = load_settings({"TAKEDOWN_HOME": str(tmp_path), "TAKEDOWN_REDIS_URL": secret_url})
    with TestClient(create_app(settings)) as client:
        ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["failed"] == ["redis"]
    assert "127.0.0.1" not in ready.text and "hunter2" not in ready.text


def test_the_operations_endpoints_are_not_part_of_the_api_description(desk: Desk) -> None:
    paths = desk.client.get("/openapi.json").json()["paths"]
    assert not {"/healthz", "/readyz", "/metrics"} & set(paths)


def scrape(text_body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Return every sample of a Prometheus text exposition by (name, labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text_body)
        for sample in family.samples
    }


def test_metrics_count_the_store_by_state_and_status_in_the_text_format(desk: Desk) -> None:
    (case,) = desk.report(A)
    desk.notice(case["id"], status="uncertain")
    answer = desk.client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = scrape(answer.text)
    assert found[("takedown_cases", (("state", "new"),))] == 1
    assert found[("takedown_cases", (("state", "removed"),))] == 0
    assert found[("takedown_notices", (("status", "uncertain"),))] == 1
    assert found[("takedown_uncertain_notices", ())] == 1
    assert found[("takedown_form_tasks_waiting", ())] == 0
    assert found[("takedown_checks_total", (("outcome", "gone"),))] == 0
    assert found[("takedown_inbox_messages_total", (("kind", "bounce"),))] == 0
    assert found[("takedown_due", (("what", "cases"),))] == 1  # reported: its trace is due
    assert found[("takedown_schema_current", ())] == 1
    assert found[("takedown_redis_up", ())] == 0  # the desk alone: no worker, no Redis
    assert A not in answer.text and "files.example" not in answer.text


@pytest.mark.parametrize("backend", BACKENDS)
def test_time_to_removal_is_a_histogram_counted_by_the_database(
    tmp_path: Path, backend: str
) -> None:
    url = fresh_database(backend, tmp_path)
    settings = load_settings(
        {"TAKEDOWN_HOME": str(tmp_path), **({"TAKEDOWN_DATABASE_URL": url} if url else {})}
    )
    engine = make_engine(database_url(settings.database_url, settings.home))
    migrate(engine)
    opened = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    hour = dt.timedelta(hours=1)
    with engine.begin() as connection:
        for n, (noticed, removed) in enumerate([(hour / 2, 2 * hour), (hour, 30 * hour)]):
            connection.execute(
                Case.__table__.insert().values(
                    url=f"{A}?{n}",
                    host="files.example",
                    state="removed",
                    opened_at=opened,
                    first_notice_at=opened + noticed,
                    removed_at=opened + removed,
                )
            )
        connection.execute(
            Case.__table__.insert().values(
                url=A, host="files.example", state="active", opened_at=opened
            )
        )
    found = scrape(metrics.exposition(metrics.StoreCollector(engine, settings)).decode())
    engine.dispose()

    def bucket(since: str, le: str) -> float:
        return found[("takedown_time_to_removal_seconds_bucket", (("le", le), ("since", since)))]

    assert found[("takedown_time_to_removal_seconds_count", (("since", "report"),))] == 2
    assert found[("takedown_time_to_removal_seconds_sum", (("since", "report"),))] == pytest.approx(
        32 * 3600, abs=0.01
    )
    assert (bucket("report", "3600.0"), bucket("report", "21600.0")) == (0, 1)
    assert (bucket("report", "86400.0"), bucket("report", "172800.0")) == (1, 2)
    assert bucket("first_notice", "3600.0") == 0 and bucket("first_notice", "21600.0") == 1
    assert found[("takedown_cases", (("state", "removed"),))] == 2


def test_latency_histograms_carry_the_outcome_where_it_is_known() -> None:
    with metrics.timed("send") as timer:
        timer.set("transient")
    metrics.observe_fetch(type("Result", (), {"outcome": "gone"})(), 0.2)
    with metrics.timed("trace"):
        pass
    found = scrape(generate_latest().decode())
    assert found[("takedown_send_seconds_count", (("status", "transient"),))] >= 1
    assert found[("takedown_fetch_seconds_bucket", (("le", "0.25"), ("outcome", "gone")))] >= 1
    assert found[("takedown_trace_seconds_count", ())] >= 1


# --- takedown health -----------------------------------------------------------------------


def test_health_on_a_home_with_no_worker_is_unhealthy_and_creates_nothing(home: Path) -> None:
    code, out, err = run(["health"])
    assert code == 1 and err == "" and out.strip().endswith("unhealthy")
    assert not (home / "takedown.db").exists() and not (home / "redis").exists()


def test_health_sees_a_workers_heartbeat_and_the_sweeper_and_their_absence(home: Path) -> None:
    run(["migrate"])
    settings = load_settings()
    with Broker(settings) as broker:  # the embedded Redis a worker would start
        assert broker.client is not None
        beat = health.Heartbeat(broker.client, "takedown-1@host-a", ["takedown"])
        beat.beat()
        lock = SweepLock(broker.client, ttl=30, holder="takedown-1@host-a")
        assert lock.acquire()
        health.record_sweep(broker.client, "takedown-1@host-a", time.time() - 0.5, tasks=3)
        broker.client.rpush("takedown.checks", b"x", b"y")
        now = time.time()
        report = health_report(settings, now)
        assert report["healthy"], report["checks"]
        assert [w["name"] for w in report["workers"]] == ["takedown-1@host-a"]
        assert report["sweep"]["holder"] == "takedown-1@host-a"
        assert report["queues"]["takedown.checks"] == 2
        code, out, _ = run(["health", "--json"])
        assert code == 0 and json.loads(out)["healthy"]
        later = health_report(settings, now + 200)  # no beat, no sweep for 200 s
        failed = {c["name"] for c in later["checks"] if not c["ok"]}
        assert failed == {"workers", "sweep"} and not later["healthy"]
        lock.release()
        assert "nobody holds" in _detail(health_report(settings, now), "sweep")


def _detail(report: dict[str, Any], name: str) -> str:
    return next(str(c["detail"]) for c in report["checks"] if c["name"] == name)


@pytest.mark.parametrize(
    ("value", "address"),
    [("9464", ("127.0.0.1", 9464)), ("0.0.0.0:9100", ("0.0.0.0", 9100)), ("[::1]:80", ("::1", 80))],
)
def test_the_metrics_port_listens_on_loopback_unless_an_address_is_given(
    value: str, address: tuple[str, int]
) -> None:
    assert load_settings({"TAKEDOWN_METRICS_PORT": value}).metrics_address == address


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TAKEDOWN_METRICS_PORT", "0"),
        ("TAKEDOWN_METRICS_PORT", "metrics.example:9464"),
        ("TAKEDOWN_METRICS_PORT", "70000"),
        ("TAKEDOWN_LOG_FORMAT", "xml"),
    ],
)
def test_bad_operations_variables_are_refused_naming_them(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value})


# --- logs and Celery events ----------------------------------------------------------------


def test_json_lines_carry_the_running_tasks_ids() -> None:
    record = logging.LogRecord("takedown.sweep", logging.INFO, __file__, 1, "sent %s", ("x",), None)
    with log_context(task="takedown.send", notice_ids=[7]):
        line = json.loads(JSONFormatter().format(record))
    assert line["message"] == "sent x" and line["notice_ids"] == [7] and line["level"] == "info"
    assert "notice_ids" not in json.loads(JSONFormatter().format(record))  # the task ended
    record.case_id = 42
    assert json.loads(JSONFormatter().format(record))["case_id"] == 42


def test_no_url_reaches_the_log_at_info_level() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("json")
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    try:
        mock = httpx.MockTransport(lambda request: httpx.Response(200, text="secret body"))
        with httpx.Client(transport=mock) as client:
            client.get("http://files.example/a.jpg?token=1")
        logging.getLogger("takedown.test").info("a line of ours")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.captureWarnings(False)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ["a line of ours"]
    access = logging.LogRecord(
        "uvicorn.access",
        20,
        "",
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("1.2.3.4:5", "GET", "/cases?host=files.example", "1.1", 200),
        None,
    )
    HideQuery().filter(access)
    assert "files.example" not in access.getMessage() and "/cases?…" in access.getMessage()


def test_task_events_wait_for_flower_to_ask_for_them() -> None:
    # Off at start (a Redis PUBLISH per event, four per task); Flower's enable_events turns
    # them on through the workers' remote control, which must stay on: see
    # test_operations_worker.py, where a real worker sends them once asked.
    assert not celery_app.conf.worker_send_task_events
    assert not celery_app.conf.task_send_sent_event
    assert celery_app.conf.worker_enable_remote_control


# --- the sample dashboard ------------------------------------------------------------------


def test_every_series_the_grafana_dashboard_plots_is_one_takedown_exposes(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    assert len(expressions) >= 12
    settings = load_settings({"TAKEDOWN_HOME": str(tmp_path)})
    with opened_store(settings):
        pass
    engine = make_engine(database_url(None, tmp_path))
    for stage in metrics.LATENCIES:
        metrics.observe(stage, 0.1, "sent")
    exposed = {
        family.name
        for family in text_string_to_metric_families(
            metrics.exposition(metrics.StoreCollector(engine, settings)).decode()
        )
    }
    engine.dispose()
    exposed |= {"takedown_queue_depth", "takedown_tasks_unacked", "takedown_workers"}  # Redis
    exposed |= {"takedown_sweep_lag_seconds", "takedown_last_sweep_timestamp_seconds"}
    for expression in expressions:
        for name in re.findall(r"takedown_[a-z_]+", expression):
            base = re.sub(r"_(bucket|count|sum|total)$", "", name)
            assert base in exposed, (name, expression)
