"""Time-to-removal statistics: the figures as pure tables, then `takedown stats` for real."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from workflows.core.figures import parse_since, span, unit_for
from workflows.core.stats import CaseRow, NoticeRow, Round, league, percentile, summarize
from workflows.store.db import database_url, make_engine, migrate
from workflows.store.models import Case, Notice
from workflows.store.queries import compute_stats

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
H = 3600.0


def row(
    state: str,
    opened_h_ago: float,
    notice_after_h: float | None = None,
    removed_after_h: float | None = None,
    *,
    provider: str | None = "PixelVault Ltd",
    asn: int | None = 205012,
    country: str | None = "GB",
    route: str | None = "host_notice",
) -> CaseRow:
    """Return a case opened OPENED_H_AGO hours before NOW, noticed and removed after it."""
    opened = NOW - dt.timedelta(hours=opened_h_ago)

    def later(hours: float | None) -> dt.datetime | None:
        return None if hours is None else opened + dt.timedelta(hours=hours)

    return CaseRow(
        state=state,
        route=route,
        country=country,
        network="185.199.108.0/28" if asn else None,
        asn=asn,
        provider=provider,
        opened_at=opened,
        first_notice_at=later(notice_after_h),
        removed_at=later(removed_after_h),
    )


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        pytest.param([], 0.9, None, id="empty"),
        pytest.param([5.0], 0.9, 5.0, id="one-value"),
        pytest.param([1.0, 2.0], 0.9, 2.0, id="two-values-rounds-up"),
        pytest.param([float(n) for n in range(1, 11)], 0.9, 9.0, id="ten-values"),
        pytest.param([float(n) for n in range(1, 12)], 0.9, 10.0, id="eleven-values"),
        pytest.param([float(n) for n in range(1, 101)], 0.5, 50.0, id="hundred-median-rank"),
    ],
)
def test_percentile_is_the_nearest_rank(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == expected


def test_median_and_p90_are_exact_over_every_removed_case() -> None:
    cases = [row("removed", 100, 0, hours) for hours in (1, 2, 3, 10)]
    d = summarize(cases, [], since=None, now=NOW).overall.from_report
    assert (d.removed, d.median, d.p90) == (4, 2.5 * H, 10 * H)
    assert d.values == (1 * H, 2 * H, 3 * H, 10 * H)


@pytest.mark.parametrize(
    ("cases", "expected"),
    [
        pytest.param([row("removed", 200, 0, 2)], {"24h": 1.0, "72h": 1.0, "7d": 1.0}, id="fast"),
        pytest.param(
            [row("removed", 200, 0, 2), row("removed", 200, 0, 30)],
            {"24h": 0.5, "72h": 1.0, "7d": 1.0},
            id="one-of-two-after-a-day",
        ),
        pytest.param(
            [row("removed", 200, 0, 2), row("active", 1, 0)],
            {"24h": 1.0, "72h": 1.0, "7d": 1.0},
            id="an-hour-old-open-case-is-not-yet-known",
        ),
        pytest.param(
            [row("removed", 200, 0, 2), row("active", 48, 0)],
            {"24h": 0.5, "72h": 1.0, "7d": 1.0},
            id="open-two-days-counts-against-24h-only",
        ),
        pytest.param(
            [row("removed", 200, 0, 2), row("needs_analyst", 200)],
            {"24h": 0.5, "72h": 0.5, "7d": 0.5},
            id="still-open-after-a-week",
        ),
        pytest.param(
            [row("removed", 200, 0, 2), row("closed", 200, 0)],
            {"24h": 1.0, "72h": 1.0, "7d": 1.0},
            id="closed-without-removal-is-left-out",
        ),
        pytest.param([row("active", 1, 0)], {"24h": None, "72h": None, "7d": None}, id="unknown"),
    ],
)
def test_share_removed_within_counts_only_cases_whose_outcome_is_known(
    cases: list[CaseRow], expected: dict[str, float | None]
) -> None:
    assert summarize(cases, [], since=None, now=NOW).overall.from_report.within == expected


def test_time_to_removal_is_per_round_when_removed_content_came_back() -> None:
    # Reported 100 h ago, removed after 10 h; back 50 h ago, removed again after 4 h.
    earlier = Round(
        opened_at=NOW - dt.timedelta(hours=100),
        first_notice_at=NOW - dt.timedelta(hours=99),
        removed_at=NOW - dt.timedelta(hours=90),
    )
    current = dataclasses.replace(row("removed", 50, 1, 4), past=(earlier,))
    once = row("removed", 30, 1, 2)
    stats = summarize([current, once], [], since=None, now=NOW)
    assert stats.overall.from_report.values == (2 * H, 4 * H, 10 * H)
    assert stats.overall.from_notice.values == (1 * H, 3 * H, 9 * H)
    assert (stats.overall.cases, stats.overall.removed) == (2, 2)
    assert stats.reappeared == {"cases": 1, "times": 1}
    assert stats.as_dict()["reappeared"] == {"cases": 1, "times": 1}


def test_time_from_first_notice_counts_only_noticed_cases() -> None:
    cases = [
        row("removed", 100, 1, 5),  # 4 h after its notice
        row("removed", 100, None, 3),  # removed before any notice went out
        row("active", 100, 90),  # noticed 10 h ago, still online
    ]
    stats = summarize(cases, [], since=None, now=NOW)
    assert stats.overall.from_report.values == (3 * H, 5 * H)
    notice = stats.overall.from_notice
    assert (notice.removed, notice.median) == (1, 4 * H)
    assert notice.within["24h"] == 1.0  # the open one has waited 10 h only: not yet known


def test_groups_split_by_country_network_provider_and_route() -> None:
    cases = [
        row("removed", 100, 0, 1),
        row("active", 30, 0),
        row(
            "removed",
            100,
            0,
            2,
            provider="Berghost GmbH",
            asn=207001,
            country="DE",
            route="no_partner",
        ),
        row("needs_analyst", 5, provider=None, asn=None, country=None, route=None),
    ]
    stats = summarize(cases, [], since=None, now=NOW)
    by_country = {g.key: (g.cases, g.open, g.removed) for g in stats.by["country"]}
    assert by_country == {"GB": (2, 1, 1), "DE": (1, 0, 1), "-": (1, 1, 0)}
    assert [g.key for g in stats.by["country"]][-1] == "DE"  # nothing open: listed last
    network = {g.key: g.label for g in stats.by["network"]}
    assert network == {"AS205012": "PixelVault Ltd", "AS207001": "Berghost GmbH", "-": "unknown"}
    assert {g.key for g in stats.by["route"]} == {"host_notice", "no_partner", "-"}
    gb = next(g for g in stats.by["country"] if g.key == "GB")
    assert gb.oldest_open == 30 * H
    assert stats.states["active"] == 1 and stats.states["closed"] == 0


def test_league_ranks_providers_by_time_online_counting_open_cases_at_their_age() -> None:
    cases = [
        row("removed", 300, 0, 1, provider="Quick"),
        row("removed", 300, 0, 50, provider="Slow but done"),
        row("removed", 300, 0, 2, provider="Ignores"),
        row("active", 100, 0, provider="Ignores"),  # online 100 h after its notice, so far
        row("active", 100, 0, provider="Ignores"),
        row("closed", 300, 0, provider="Closed only"),
        row("needs_analyst", 300, None, provider="Never noticed"),
    ]
    rows = league(cases, NOW)
    assert [r.provider for r in rows] == ["Ignores", "Slow but done", "Quick"]
    ignores = rows[0]
    assert (ignores.noticed, ignores.removed, ignores.online) == (3, 1, 2)
    assert (ignores.median_online, ignores.median_removal) == (100 * H, 2 * H)


def test_a_provider_that_cannot_be_reached_ranks_among_the_worst_not_the_fastest() -> None:
    cases = [
        row("removed", 300, 0, 30, provider="Slow"),
        # Its notice bounced at once; the upstream then had it removed within an hour: the
        # provider never got the notice, so it is timed from the report and ranked first.
        dataclasses.replace(row("removed", 300, 0, 1, provider="Bouncing"), bounced=1),
        # Refused at sending: no first notice at all, still online since its report.
        dataclasses.replace(row("active", 10, None, provider="Dead desk"), bounced=2),
    ]
    rows = league(cases, NOW)
    assert [r.provider for r in rows] == ["Dead desk", "Bouncing", "Slow"]
    assert [r.bounced for r in rows] == [1, 1, 0]
    assert rows[0].median_online == 10 * H and rows[0].online == 1
    assert rows[1].median_removal == 1 * H  # from the report (it was never reached)


def test_league_keeps_the_slowest_ten() -> None:
    cases = [row("removed", 300, 0, n, provider=f"P{n:02d}") for n in range(1, 15)]
    assert [r.provider for r in league(cases, NOW)] == [f"P{n:02d}" for n in range(14, 4, -1)]


def test_notices_sent_bounces_and_re_notices() -> None:
    notices = [
        NoticeRow("notice", "sent"),
        NoticeRow("referral", "sent"),
        NoticeRow("chaser", "sent"),
        NoticeRow("escalation", "sent"),
        NoticeRow("notice", "failed"),
        NoticeRow("chaser", "pending"),
        NoticeRow("notice", "uncertain"),
    ]
    counts = summarize([], notices, since=None, now=NOW).notices
    assert counts == {"sent": 4, "bounces": 1, "re_notices": 2, "pending": 1, "uncertain": 1}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(None, None, id="none"),
        pytest.param("30d", NOW - dt.timedelta(days=30), id="days"),
        pytest.param("12h", NOW - dt.timedelta(hours=12), id="hours"),
        pytest.param("2026-11-01", dt.datetime(2026, 11, 1, tzinfo=dt.UTC), id="date"),
    ],
)
def test_since_takes_a_duration_or_a_date(text: str | None, expected: dt.datetime | None) -> None:
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "-"), (42, "42s"), (750, "12.5m"), (3 * H, "3.0h"), (100 * H, "4.2d")],
)
def test_spans_read_in_a_fitting_unit(seconds: float | None, text: str) -> None:
    assert span(seconds) == text


@pytest.mark.parametrize(
    ("longest", "unit"), [(30, "seconds"), (600, "minutes"), (5 * H, "hours"), (9 * 86400, "days")]
)
def test_chart_unit_fits_the_longest_time(longest: float, unit: str) -> None:
    assert unit_for(longest)[0] == unit


def seed(home: Path, now: dt.datetime) -> None:
    """Store a small history: removed, open, closed and purged cases, and their notices."""
    engine = make_engine(database_url(None, home))
    migrate(engine)
    table = [
        # state, provider, asn, country, opened hours ago, notice after, removed after
        ("removed", "PixelVault Ltd", 205012, "GB", 100, 0.1, 2),
        ("removed", "PixelVault Ltd", 205012, "GB", 100, 0.1, 4),
        ("removed", "Snail Hosting Ltd", 205013, "GB", 100, 0.1, 30),
        ("active", "Snail Hosting Ltd", 205013, "GB", 80, 0.1, None),
        ("removed", "Berghost GmbH", 207001, "DE", 100, 0.1, 10),
        ("needs_analyst", None, None, None, 5, None, None),
        ("closed", "Cloudflare", 13335, "US", 200, 0.1, None),  # purged below
        ("removed", "Old Host", 1, "FR", 24 * 400, 1, 2),  # before any --since below
    ]
    with Session(engine) as session, session.begin():
        for n, (state, provider, asn, country, ago, notice, removed) in enumerate(table):
            opened = now - dt.timedelta(hours=ago)
            session.add(
                Case(
                    url=f"http://site{n}.test/x",
                    host=f"site{n}.test",
                    state=state,
                    provider=provider,
                    asn=asn,
                    country=country,
                    route="host_notice" if country == "GB" else "no_partner" if country else None,
                    opened_at=opened,
                    first_notice_at=opened + dt.timedelta(hours=notice) if notice else None,
                    removed_at=opened + dt.timedelta(hours=removed) if removed else None,
                )
            )
        for n, (kind, status) in enumerate(
            [("notice", "sent"), ("chaser", "sent"), ("notice", "failed")]
        ):
            session.add(
                Notice(
                    kind=kind,
                    recipients="abuse@x.example",
                    language="en",
                    status=status,
                    message_id=f"<{n}@test>",
                    subject="s",
                    body_text="t",
                    body_html="h",
                    attempts=1,
                    created_at=now - dt.timedelta(hours=50),
                )
            )
        purged = session.scalars(select(Case).where(Case.state == "closed")).one()
        purged.url, purged.host, purged.trace, purged.purged_at = "", "", None, now
    engine.dispose()


def test_compute_stats_reads_the_period_asked_for_purged_cases_included(tmp_path: Path) -> None:
    seed(tmp_path, NOW)
    engine = make_engine(database_url(None, tmp_path))
    with Session(engine) as session:
        recent = compute_stats(session, since=NOW - dt.timedelta(days=30), now=NOW)
        everything = compute_stats(session, since=None, now=NOW)
    engine.dispose()
    assert (recent.overall.cases, everything.overall.cases) == (7, 8)
    assert recent.states["closed"] == 1  # the purged case still counts
    assert {g.key for g in recent.by["country"]} == {"GB", "DE", "US", "-"}
    assert recent.overall.from_report.values == (2 * H, 4 * H, 10 * H, 30 * H)
    assert recent.slowest[0].provider == "Snail Hosting Ltd"  # one case online for 80 h
    assert recent.notices == {
        "sent": 2,
        "bounces": 1,
        "re_notices": 1,
        "pending": 0,
        "uncertain": 0,
    }
    assert json.loads(json.dumps(recent.as_dict()))["overall"]["from_report"]["median_s"] == 7 * H


def test_stats_command_prints_json_csv_a_table_and_writes_a_chart(
    takedown_command: list[str], tmp_path: Path
) -> None:
    seed(tmp_path, dt.datetime.now(dt.UTC))
    as_json = _run(takedown_command, tmp_path, "--since", "30d", "--json")
    figures = json.loads(as_json.stdout)
    assert figures["overall"]["cases"] == 7 and figures["overall"]["removed"] == 4
    assert figures["overall"]["from_report"]["p90_s"] == 30 * H
    assert figures["slowest_providers"][0]["provider"] == "Snail Hosting Ltd"
    assert figures["notices"]["bounces"] == 1
    rows = list(csv.DictReader(io.StringIO(_run(takedown_command, tmp_path, "--csv").stdout)))
    assert rows[0]["dimension"] == "all" and rows[0]["cases"] == "8"
    de = next(r for r in rows if r["dimension"] == "country" and r["key"] == "DE")
    assert float(de["median_from_report_s"]) == 10 * H and de["within_24h_from_report"] == "1.0"
    chart = tmp_path / "ttr.png"
    text = _run(takedown_command, tmp_path, "--since", "30d", "--plot", str(chart))
    assert "Snail Hosting Ltd" in text.stdout and "from first notice" in text.stdout
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 20_000


def _run(command: list[str], home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*command, "stats", *args],
        env={"PATH": "/usr/bin:/bin", "TAKEDOWN_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--since", "last tuesday"], "--since: 'last tuesday' is neither", id="words"),
        pytest.param(["--since", "0d"], "--since: must be more than zero", id="zero"),
        pytest.param(["--since", "99999999999d"], "before the year 1", id="too-long-ago"),
        pytest.param(["--since=-3d"], "--since: '-3d' is neither", id="negative"),
        pytest.param(["--plot", "chart.svg"], "--plot: 'chart.svg' must name a .png", id="svg"),
        pytest.param(["--json", "--csv"], "not allowed with argument", id="two-formats"),
    ],
)
def test_stats_command_refuses_bad_input_with_one_line_and_touches_nothing(
    takedown_command: list[str], tmp_path: Path, args: list[str], message: str
) -> None:
    done = subprocess.run(
        [*takedown_command, "stats", *args],
        env={"PATH": "/usr/bin:/bin", "TAKEDOWN_HOME": str(tmp_path / "home")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and message in done.stderr
    assert not (tmp_path / "home").exists()  # no database was created
