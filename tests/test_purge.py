"""Data retention: `takedown purge` erases old closed cases' URLs and keeps the figures.

One scenario runs the whole workflow once with a real worker (cases removed by their
abuse desks, one closed by a supervisor, one still open), then ages some cases by 400
days; each test purges its own copy of that database with the real `takedown purge`.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ISOLATED, SERVICE_URLS, SIM_ADDRESSES
from sqlalchemy import Engine, create_engine, func, inspect, select, text, update
from sqlalchemy.orm import Session
from stack import Stack, stack_of

from workflows.config.settings import load_settings
from workflows.core.urls import normalize_url
from workflows.engine.actions import add_note, close
from workflows.engine.runtime import Runtime
from workflows.engine.sweep import PURGE_EVERY, sweep
from workflows.kinds import CaseState, CloseReason
from workflows.sim import Desk, Network, World
from workflows.store.accounts import create_user
from workflows.store.cases import report
from workflows.store.db import migrate, session_factory, transaction, utcnow
from workflows.store.models import Case, Check, Event, Notice, NoticeItem
from workflows.store.purge import BATCH, purge_closed
from workflows.store.queries import compute_stats

OLD = ["http://old.hosta.test/1?id=7", "http://old.hosta.test/2"]
MIXED = ["http://mixed.hosta.test/a", "http://mixed.hosta.test/b"]  # one notice lists both
NEW = "http://new.hosta.test/3"
LIVE = "http://live.hostb.test/4"
SHUT = "http://closed.hostc.test/5"  # closed by a supervisor
AGED = [*OLD, MIXED[0], SHUT]  # made 400 days old: the purge's targets
DAY = dt.timedelta(days=1)


def scenario_world() -> World:
    built = World(
        networks=[
            Network("185.199.108.0/28", 205012, "HOSTA-NET", "GB", abuse=["abuse@hosta.example"]),
            Network("185.199.108.16/29", 205013, "HOSTB-NET", "GB", abuse=["abuse@hostb.example"]),
            Network("185.199.109.0/24", 205015, "HOSTC-NET", "GB", abuse=["abuse@hostc.example"]),
        ],
        records={
            "old.hosta.test": [("A", "185.199.108.10")],
            "mixed.hosta.test": [("A", "185.199.108.11")],
            "new.hosta.test": [("A", "185.199.108.12")],
            "live.hostb.test": [("A", "185.199.108.17")],
            "closed.hostc.test": [("A", "185.199.109.10")],
        },
    )
    for url in [*OLD, *MIXED, NEW, LIVE, SHUT]:
        built.put_content(url)
    return built


def desks(world: World) -> list[Desk]:
    return [
        Desk("abuse@hosta.example", "prompt", world, delay=0.3),
        Desk("abuse@hostb.example", "never", world),
        Desk("abuse@hostc.example", "never", world),
    ]


def states(stack: Stack, urls: list[str], state: str) -> bool:
    return all((case := stack.case(url)) is not None and case.state == state for url in urls)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Run the workflow once; yield a folder with the aged database, ready to copy."""
    world = scenario_world()
    home = tmp_path_factory.mktemp("purge-scenario")
    with stack_of(
        world, desks(world), home, "embedded", SERVICE_URLS, ISOLATED, SIM_ADDRESSES
    ) as stack:
        stack.start_worker()
        for urls in (OLD, MIXED, [NEW]):  # one after the other: a notice each (two URLs in one)
            stack.report(*urls, ref="OP-9")
            stack.wait_for(lambda urls=urls: states(stack, urls, "removed"), 60, f"{urls} removed")
        stack.report(LIVE, SHUT)
        stack.wait_for(
            lambda: all(stack.case(u).first_notice_at for u in (LIVE, SHUT)), 60, "notices sent"
        )
        stack.stop_worker()
        with Session(stack.engine) as session, session.begin():
            boss = create_user(session, "boss", "supervisor")
            add_note(session, stack.case(OLD[0]).id, boss, f"seen again at {OLD[0]}", now=utcnow())
            close(
                session,
                stack.case(SHUT).id,
                boss,
                now=utcnow(),
                code=CloseReason.DUPLICATE,
                reason=f"duplicate: {SHUT}",
            )
        age(stack.engine, [stack.case(url).id for url in AGED], 400 * DAY)
        with stack.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    yield home  # the servers are down: a test may start a world of its own


def age(engine: Engine, ids: list[int], by: dt.timedelta) -> None:
    """Move every time of these cases (and of their events, checks, notices) back BY."""
    times = ("opened_at", "routed_at", "first_notice_at", "removed_at", "closed_at")
    with Session(engine) as session, session.begin():
        for case in session.scalars(select(Case).where(Case.id.in_(ids))):
            for name in times:
                if getattr(case, name) is not None:
                    setattr(case, name, getattr(case, name) - by)
        for model in (Event, Check):
            for row in session.scalars(select(model).where(model.case_id.in_(ids))):
                row.at -= by
        listed = select(NoticeItem.notice_id).where(NoticeItem.case_id.in_(ids))
        for notice in session.scalars(select(Notice).where(Notice.id.in_(listed))):
            notice.created_at -= by
            notice.sent_at = notice.sent_at - by if notice.sent_at else None


@pytest.fixture
def home(scenario: Path, tmp_path: Path) -> Path:
    """Give the test its own copy of the scenario's database."""
    shutil.copy(scenario / "takedown.db", tmp_path / "takedown.db")
    return tmp_path


def takedown(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "takedown"), *args],
        env={"PATH": "/usr/bin:/bin", "TAKEDOWN_HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def purged(home: Path, *args: str, **env: str) -> dict[str, Any]:
    done = takedown(home, "purge", "--json", *args, **env)
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def engine_of(home: Path) -> Engine:
    return create_engine(f"sqlite:///{home / 'takedown.db'}")


def dump(home: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Return every row of every table."""
    engine = engine_of(home)
    with engine.connect() as connection:
        tables = inspect(connection).get_table_names()
        found = {
            t: list(map(tuple, connection.execute(text(f"SELECT * FROM {t} ORDER BY rowid"))))
            for t in tables
        }
    engine.dispose()
    return found


def places(home: Path, needle: str) -> list[str]:
    """Return table.column (and row id) of every text of the database holding NEEDLE."""
    engine = engine_of(home)
    found = []
    with engine.connect() as connection:
        inspector = inspect(connection)
        for table in inspector.get_table_names():
            for column in inspector.get_columns(table):
                name = column["name"]
                rows = connection.execute(
                    text(f'SELECT rowid FROM {table} WHERE instr(CAST("{name}" AS TEXT), :n) > 0'),
                    {"n": needle},
                )
                found += [f"{table}.{name}#{row[0]}" for row in rows]
    engine.dispose()
    return found


def ids_of(home: Path, urls: list[str]) -> list[int]:
    engine = engine_of(home)
    with Session(engine) as session:
        ids = [session.scalars(select(Case.id).where(Case.url == url)).one() for url in urls]
    engine.dispose()
    return sorted(ids)


def figures(home: Path) -> dict[str, Any]:
    """Return what the statistics keep: case figures, events and notices without texts."""
    engine = engine_of(home)
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    with Session(engine) as session:
        kept = {
            "stats": compute_stats(session, since=None, now=now).as_dict(),
            "cases": session.execute(
                select(
                    Case.id,
                    Case.state,
                    Case.route,
                    Case.country,
                    Case.network,
                    Case.asn,
                    Case.provider,
                    Case.category,
                    Case.opened_at,
                    Case.routed_at,
                    Case.first_notice_at,
                    Case.removed_at,
                    Case.closed_at,
                ).order_by(Case.id)
            ).all(),
            "events": session.execute(
                select(Event.case_id, Event.kind, Event.at, Event.actor)
                .where(Event.kind != "purged")
                .order_by(Event.id)
            ).all(),
            "notices": session.execute(
                select(Notice.id, Notice.kind, Notice.status, Notice.created_at, Notice.sent_at)
            ).all(),
            "checks": session.execute(select(Check.case_id, Check.at, Check.outcome)).all(),
        }
    engine.dispose()
    return kept


def test_purge_erases_every_trace_of_old_urls_and_keeps_the_figures(home: Path) -> None:
    before, figures_before = dump(home), figures(home)
    aged = ids_of(home, AGED)
    assert places(home, OLD[0]) and places(home, "closed.hostc.test")  # the search finds them
    done = purged(home, "--older-than", "365d")
    assert (done["count"], done["ids"], done["older_than"]) == (len(AGED), aged, "365d")
    for url in [*OLD, SHUT]:
        host = url.split("/")[2]
        assert places(home, url) == [] and places(home, host) == [], url
    assert figures(home) == figures_before
    after = dump(home)
    assert set(after) == set(before)
    engine = engine_of(home)
    with Session(engine) as session:
        cases = {c.id: c for c in session.scalars(select(Case))}
        events = session.execute(select(Event.case_id, Event.actor).where(Event.kind == "purged"))
        assert sorted(events) == [(case_id, "takedown") for case_id in aged]
        for case_id in aged:
            assert cases[case_id].url == f"purged:{case_id}" and cases[case_id].purged_at
        untouched = [c for c in cases.values() if c.id not in aged]
        assert all(c.purged_at is None and c.url.startswith("http://") for c in untouched)
        assert {c.state for c in untouched} == {"removed", "active"}
    engine.dispose()


def test_purge_leaves_open_and_recent_cases_exactly_as_they_were(home: Path) -> None:
    keep = ids_of(home, [*MIXED[1:], NEW, LIVE])
    before = dump(home)
    purged(home, "--older-than", "365d")
    after = dump(home)
    for table, id_column in (("cases", 0), ("events", 1), ("checks", 1), ("notice_items", 1)):
        rows = [r for r in before[table] if r[id_column] in keep]
        assert rows and rows == [r for r in after[table] if r[id_column] in keep], table
    notice_id = [c.name for c in NoticeItem.__table__.columns].index("notice_id")
    notices = {r[notice_id] for r in before["notice_items"] if r[1] in keep}  # their notices
    rows = [r for r in before["notices"] if r[0] in notices]
    assert len(rows) >= 3 and rows == [r for r in after["notices"] if r[0] in notices]


def test_a_notice_keeps_its_text_until_every_case_it_lists_is_purged(home: Path) -> None:
    purged(home, "--older-than", "365d")
    # MIXED[1] is recent: the notice that also lists MIXED[0] is still a record about it.
    assert places(home, MIXED[0]) and {p.split("#")[0] for p in places(home, MIXED[0])} <= {
        "notices.subject",
        "notices.body_text",
        "notices.body_html",
        "notices.xarf",
    }
    last = ids_of(home, [MIXED[1]])
    age(engine_of(home), last, 400 * DAY)
    assert purged(home, "--older-than", "365d")["ids"] == last
    assert (
        places(home, MIXED[0]) == places(home, MIXED[1]) == places(home, "mixed.hosta.test") == []
    )


def test_purge_is_idempotent(home: Path) -> None:
    first = purged(home, "--older-than", "365d")
    after_first = dump(home)
    again = purged(home, "--older-than", "365d")
    assert first["count"] == len(AGED) and again["count"] == 0
    assert dump(home) == after_first


def test_dry_run_lists_the_cases_and_changes_nothing(home: Path) -> None:
    before = dump(home)
    done = purged(home, "--older-than", "365d", "--dry-run")
    assert (done["dry_run"], done["ids"]) == (True, ids_of(home, AGED))
    assert dump(home) == before
    text_output = takedown(home, "purge", "--older-than", "365d", "--dry-run")
    assert text_output.stdout.startswith(f"would purge {len(AGED)} cases removed or closed before ")


def test_the_period_comes_from_takedown_retention_and_the_option_wins(home: Path) -> None:
    assert purged(home, "--older-than", "500d", TAKEDOWN_RETENTION="300d")["count"] == 0
    done = purged(home, TAKEDOWN_RETENTION="365d")
    assert (done["older_than"], done["count"]) == ("365d", len(AGED))


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        pytest.param(
            [], {}, "--older-than: required when TAKEDOWN_RETENTION is not set", id="none"
        ),
        pytest.param(["--older-than", "3x"], {}, "--older-than: '3x' is not a duration", id="3x"),
        pytest.param(["--older-than=-1d"], {}, "--older-than: '-1d' is not a duration", id="neg"),
        pytest.param(["--older-than", "0d"], {}, "--older-than: must be more than zero", id="0d"),
        pytest.param(["--older-than", "365"], {}, "'365' needs a unit, like 365d", id="unitless"),
        pytest.param([], {"TAKEDOWN_RETENTION": "soon"}, "TAKEDOWN_RETENTION: 'soon'", id="env"),
        pytest.param([], {"TAKEDOWN_RETENTION": "0s"}, "TAKEDOWN_RETENTION: must be", id="env-0"),
    ],
)
def test_bad_period_exits_2_with_one_line_and_changes_nothing(
    home: Path,
    tmp_path_factory: pytest.TempPathFactory,
    args: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    before = dump(home)
    done = takedown(home, "purge", *args, **env)
    assert (done.returncode, done.stdout) == (2, "")
    assert len(done.stderr.strip().splitlines()) == 1 and message in done.stderr, done.stderr
    assert dump(home) == before
    empty = tmp_path_factory.mktemp("empty")
    assert takedown(empty, "purge", *args, **env).returncode == 2
    assert list(empty.iterdir()) == []  # not even a database was made


def test_the_erased_bytes_are_gone_from_the_database_files(home: Path) -> None:
    assert all(url.encode() in (home / "takedown.db").read_bytes() for url in [OLD[1], SHUT])
    purged(home, "--older-than", "365d")
    files = [p for p in home.iterdir() if p.name.startswith("takedown.db")]
    for url in [OLD[1], SHUT]:
        leftovers = [p.name for p in files if url.encode() in p.read_bytes()]
        assert leftovers == [], url


def many_closed_cases(home: Path, count: int) -> list[int]:
    """Report COUNT URLs with the real command and close them 400 days ago."""
    listing = home / "urls.txt"
    listing.write_text("".join(f"http://bulk{n % 7}.example.test/{n}\n" for n in range(count)))
    done = takedown(home, "report", "--file", str(listing), "--json")
    ids = [row["id"] for row in json.loads(done.stdout)]
    engine = engine_of(home)
    with engine.begin() as connection:
        long_ago = dt.datetime.now(dt.UTC) - 400 * DAY
        connection.execute(
            update(Case)
            .where(Case.id.in_(ids))
            .values(state=CaseState.CLOSED, closed_at=long_ago, open_key=None, due_at=None)
        )
    engine.dispose()
    return ids


def test_two_purges_at_once_purge_each_case_once(tmp_path: Path) -> None:
    ids = many_closed_cases(tmp_path, BATCH * 2 + 50)
    command = [
        str(Path(sys.executable).parent / "takedown"),
        "purge",
        "--older-than",
        "1d",
        "--json",
    ]
    env = {"PATH": "/usr/bin:/bin", "TAKEDOWN_HOME": str(tmp_path)}
    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) for _ in "ab"]
    outputs = [json.loads(run.communicate(timeout=300)[0]) for run in runs]
    assert sorted(outputs[0]["ids"] + outputs[1]["ids"]) == ids
    engine = engine_of(tmp_path)
    with engine.connect() as connection:
        events = connection.execute(
            select(Event.case_id, func.count())
            .where(Event.kind == "purged")
            .group_by(Event.case_id)
        ).all()
    engine.dispose()
    assert sorted(events) == [(case_id, 1) for case_id in ids]


def test_purge_works_in_batches_and_a_limited_run_says_more_is_left(tmp_path: Path) -> None:
    ids = many_closed_cases(tmp_path, BATCH + 20)
    engine = engine_of(tmp_path)
    sessions = session_factory(engine)
    first = purge_closed(sessions, utcnow(), 86400.0, max_batches=1)
    assert (first.ids, first.more) == (ids[:BATCH], True)
    rest = purge_closed(sessions, utcnow(), 86400.0, max_batches=1)
    assert (rest.ids, rest.more) == (ids[BATCH:], False)
    engine.dispose()


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def closed_case(rt: Runtime, url: str, closed_at: dt.datetime) -> int:
    with transaction(rt.sessions) as session:
        (done,) = report(
            session,
            [normalize_url(url)],
            reference=None,
            category=None,
            analyst=None,
            now=closed_at,
        )
        session.execute(
            update(Case)
            .where(Case.id == done.id)
            .values(state=CaseState.CLOSED, closed_at=closed_at, open_key=None, due_at=None)
        )
    return done.id


def purged_ids(rt: Runtime) -> list[int]:
    with rt.sessions() as session:
        return list(session.scalars(select(Case.id).where(Case.purged_at.is_not(None))))


def test_the_sweep_purges_past_takedown_retention_at_most_once_an_hour(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "TAKEDOWN_HOME": str(tmp_path),
            "TAKEDOWN_RETENTION": "30d",
            "TAKEDOWN_SENDER": "a@b.example",
        }
    )
    rt = Runtime.from_settings(settings)
    migrate(rt.engine)
    start = dt.datetime(2030, 6, 1, tzinfo=dt.UTC)
    rt.clock = Clock(start)
    old = closed_case(rt, "http://x.example.test/old", start - 31 * DAY)
    soon = closed_case(rt, "http://x.example.test/soon", start - 30 * DAY + dt.timedelta(minutes=5))
    assert sweep(rt, lambda task, ids: None).purged == 1 and purged_ids(rt) == [old]
    rt.clock.now = start + dt.timedelta(minutes=30)  # `soon` is due now, but the hour is not up
    assert sweep(rt, lambda task, ids: None).purged == 0 and purged_ids(rt) == [old]
    rt.clock.now = start + dt.timedelta(seconds=PURGE_EVERY)
    assert sweep(rt, lambda task, ids: None).purged == 1 and purged_ids(rt) == [old, soon]
    rt.close()


def test_without_takedown_retention_the_sweep_never_purges(tmp_path: Path) -> None:
    rt = Runtime.from_settings(load_settings({"TAKEDOWN_HOME": str(tmp_path)}))
    migrate(rt.engine)
    closed_case(rt, "http://x.example.test/old", utcnow() - 3650 * DAY)
    assert sweep(rt, lambda task, ids: None).purged == 0 and purged_ids(rt) == []
    rt.close()


def test_a_running_worker_purges_by_takedown_retention(scenario: Path, tmp_path: Path) -> None:
    shutil.copy(scenario / "takedown.db", tmp_path / "takedown.db")
    world = scenario_world()
    with stack_of(
        world, desks(world), tmp_path, "embedded", SERVICE_URLS, ISOLATED, SIM_ADDRESSES
    ) as stack:
        stack.env["TAKEDOWN_RETENTION"] = "365d"
        stack.start_worker()
        aged = ids_of(tmp_path, AGED)
        stack.wait_for(
            lambda: [c.id for c in stack.cases() if c.purged_at] == aged, 60, "the aged purged"
        )
        stack.stop_worker()
        assert (
            "retention: purged 4 cases removed or closed more than 365d ago" in stack.worker_log()
        )
    assert places(tmp_path, OLD[0]) == [] and places(tmp_path, SHUT) == []
