"""The workflow policy: every bad file names its line, and the scheduling decisions."""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import tomlish
from hypothesis import given, settings
from hypothesis import strategies as st

from workflows.config.policy import KEYS, STEP_KEYS, load_demo_policy, load_policy, parse_policy
from workflows.core.policy import (
    RECIPIENTS,
    ROUTES,
    SENDS,
    Policy,
    Step,
    trace_retry_delay,
)
from workflows.core.routing import Route
from workflows.core.steps import next_step, step_due_at
from workflows.errors import ConfigError

HOST = 'steps = [{ after = "0s", send = "notice" }, { after = "24h", send = "chaser" }]'
REFERRAL = 'steps = [{ after = "0s", send = "referral" }, { after = "3d", send = "notice" }]'
NO_PARTNER = 'steps = [{ after = "0s", send = "notice" }]'


def policy(
    *top: str, host: str = HOST, referral: str = REFERRAL, no_partner: str = NO_PARTNER
) -> str:
    """Return a policy file: the `top` lines, then the three workflows' headers and steps.

    With no `top` lines, [workflow.host_notice] is line 1 and its steps start on line 2.
    """
    workflows = ("[workflow.host_notice]", host, "[workflow.hotline_referral]", referral)
    return "\n".join((*top, *workflows, "[workflow.no_partner]", no_partner)) + "\n"


def steps(*tables: str) -> str:
    """Return a `steps` array with one inline table per line (the first on the next line)."""
    return "steps = [\n" + "".join(f"  {table},\n" for table in tables) + "]"


def write(directory: Path, content: str | bytes, name: str = "policy.toml") -> Path:
    """Write a file for a test and return its path."""
    path = directory / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


@pytest.fixture(scope="module")
def shipped() -> Policy:
    """Return the shipped production policy."""
    return load_policy()


NOTICE = '{ after = "0s", send = "notice" }'
CHASER = '{ after = "24h", send = "chaser" }'

BAD_FILES = [
    pytest.param("sweep_every = \n", 1, "TOML syntax", id="syntax"),
    pytest.param(policy('sweep = "30s"'), 1, 'unknown key "sweep"', id="unknown-top-level-key"),
    pytest.param(
        policy('sweep_every = "soon"'), 1, 'sweep_every "soon" is not a duration', id="bad-unit"
    ),
    pytest.param(
        policy('sweep_every = "30 seconds"'), 1, "not a duration like 30s", id="spelled-out-unit"
    ),
    pytest.param(
        policy('sweep_every = "-30s"'), 1, 'sweep_every "-30s" must not be negative', id="neg"
    ),
    pytest.param(
        policy("sweep_every = -5"), 1, "sweep_every -5 must not be negative", id="neg-number"
    ),
    pytest.param(
        policy('sweep_every = "0s"'), 1, "sweep_every must be longer than 0s", id="zero-sweep"
    ),
    pytest.param(
        policy("", 'overdue_after = "3 days"'),
        2,
        'overdue_after "3 days" is not a duration',
        id="overdue-after-unit",
    ),
    pytest.param(
        policy('overdue_after = "0s"'), 1, "overdue_after must be longer than 0s", id="overdue-0"
    ),
    pytest.param(policy("sweep_every = true"), 1, "not true/false", id="duration-bool"),
    pytest.param(policy("notice_window = [1]"), 1, "not an array", id="duration-array"),
    pytest.param(policy("recheck_every = nan"), 1, "recheck_every must be", id="duration-nan"),
    pytest.param(policy("recheck_every = inf"), 1, "longer than 3650d", id="duration-inf"),
    pytest.param(
        policy("", 'retrace_every = "99999d"'), 2, "retrace_every", id="duration-too-long"
    ),
    pytest.param(
        policy(f"retrace_every = 1{'0' * 400}"), 1, "longer than 3650d", id="duration-huge-int"
    ),
    pytest.param(
        policy(f'retrace_every = "1{"0" * 400}s"'), 1, "longer than", id="duration-huge-text"
    ),
    pytest.param(policy("max_notice_urls = 0"), 1, "at least 1, not 0", id="urls-zero"),
    pytest.param(policy("max_notice_urls = -3"), 1, "at least 1, not -3", id="urls-negative"),
    pytest.param(
        policy('max_notice_urls = "500"'), 1, "whole number, not a string", id="urls-string"
    ),
    pytest.param(policy("max_notice_urls = 1.5"), 1, "whole number, not a number", id="float"),
    pytest.param(
        policy("# knobs", "confirm_gone = { checks = 0 }"),
        2,
        "[confirm_gone]: checks must be at least 1, not 0",
        id="confirm-checks-zero",
    ),
    pytest.param(
        policy("confirm_gone = { checks = -2 }"), 1, "at least 1, not -2", id="confirm-negative"
    ),
    pytest.param(
        policy("[confirm_gone]", "checks = 2", 'spacing = "soon"'),
        3,
        '[confirm_gone]: spacing "soon" is not a duration',
        id="confirm-spacing-under-header",
    ),
    pytest.param(
        policy("confirm_gone = { check = 2 }"), 1, 'unknown key "check"', id="confirm-unknown-key"
    ),
    pytest.param(policy("confirm_gone = 2"), 1, "confirm_gone must be a table", id="confirm-int"),
    pytest.param(
        policy('trace_retry = { first = "1h", max = "1m" }'),
        1,
        "max must not be shorter than first",
        id="retry-max-below-first",
    ),
    pytest.param(
        policy('trace_retry = { first = "0s" }'), 1, "first must be longer than 0s", id="retry-0"
    ),
    pytest.param(policy('trace_retry = "1m"'), 1, "trace_retry must be a table", id="retry-str"),
    pytest.param('sweep_every = "30s"\n', 1, "[workflow.host_notice] is missing", id="none"),
    pytest.param(
        "\n".join(("# one", "[workflow.host_notice]", HOST, "[workflow.no_partner]", NO_PARTNER)),
        2,
        "[workflow.hotline_referral] is missing",
        id="missing-route",
    ),
    pytest.param("workflow = 3\n", 1, "workflow must be a table", id="workflow-int"),
    pytest.param(
        policy("[workflow.host_notise]", HOST),
        1,
        'unknown key "host_notise" (known keys: host_notice, hotline_referral, no_partner)',
        id="unknown-route",
    ),
    pytest.param(
        policy(no_partner=NO_PARTNER + "\nchaser_after = 3"),
        7,
        '[workflow.no_partner]: unknown key "chaser_after"',
        id="unknown-workflow-key",
    ),
    pytest.param(policy(host="steps = []"), 2, "at least one step", id="empty-steps"),
    pytest.param(policy(host=""), 1, "at least one step", id="absent-steps"),
    pytest.param(
        policy(host='steps = "notice"'), 2, "steps must be an array", id="steps-not-array"
    ),
    pytest.param(
        policy(referral='steps = ["referral"]'),
        4,
        "[workflow.hotline_referral]: step 1: must be a table like",
        id="step-not-table",
    ),
    pytest.param(
        policy(host=steps(NOTICE, '{ after = "24h", send = "chaser", too = "host" }')),
        4,
        'step 2: unknown key "too" (known keys: after, send, to)',
        id="step-unknown-key",
    ),
    pytest.param(
        policy(host=steps(NOTICE, '{ send = "chaser" }')),
        4,
        "step 2: after is required",
        id="step-after-missing",
    ),
    pytest.param(
        policy(host=steps(NOTICE, '{ after = "1 day", send = "chaser" }')),
        4,
        'step 2: after "1 day" is not a duration',
        id="step-after-bad",
    ),
    pytest.param(
        policy(host=steps(NOTICE, '{ after = "-1h", send = "chaser" }')),
        4,
        'step 2: after "-1h" must not be negative',
        id="step-after-negative",
    ),
    pytest.param(
        policy(host=steps("{ after = -1, send = 'notice' }")),
        3,
        "step 1: after -1 must not be negative",
        id="step-after-negative-number",
    ),
    pytest.param(
        policy(host=steps('{ after = "0s" }')), 3, "step 1: send is required", id="send-missing"
    ),
    pytest.param(
        policy(host=steps(NOTICE, '{ after = "1d", send = "reminder" }')),
        4,
        'send "reminder" is not known: use one of notice, chaser, referral, escalation',
        id="send-unknown",
    ),
    pytest.param(
        policy(host=steps(NOTICE, '{ after = "3d", send = "escalation", to = "registry" }')),
        4,
        'to "registry" is not known: use one of host, hotline, upstream, registrar',
        id="to-unknown",
    ),
    pytest.param(
        policy(referral='steps = [{ after = "0s", send = "referral", to = "host" }]'),
        4,
        "a referral goes to the hotline, not host",
        id="referral-to-host",
    ),
    pytest.param(
        policy(host=steps(NOTICE, '{ after = "1d", send = "referral", to = "upstream" }')),
        4,
        "step 2: a referral goes to the hotline, not upstream",
        id="referral-to-upstream",
    ),
    pytest.param(
        policy(host=steps(NOTICE, '{ after = "72h", send = "escalation" }', CHASER)),
        5,
        'step 3: after = "24h" is sooner than step 2\'s "72h": list the steps in time order',
        id="steps-out-of-order",
    ),
    pytest.param(
        policy(host=steps(CHASER)),
        3,
        "step 1: a chaser to host needs an earlier notice, referral or escalation to host",
        id="chaser-first",
    ),
    pytest.param(
        policy(referral='steps = [{ after = "0s", send = "referral" }, ' + CHASER + "]"),
        4,
        "step 2: a chaser to host needs an earlier",
        id="chaser-to-host-after-referral",
    ),
    pytest.param(
        policy(host=steps(NOTICE, '{ after = "1d", send = "chaser", to = "upstream" }')),
        4,
        "step 2: a chaser to upstream needs",
        id="chaser-to-someone-else",
    ),
    pytest.param(
        policy(host=steps(NOTICE, CHASER, CHASER)), 5, "step 3: repeats step 2", id="repeated"
    ),
    pytest.param(
        policy(host='steps = [ # a comment with { and [\n  { after = "x", send = "notice" }]'),
        3,
        'step 1: after "x"',
        id="step-line-after-comment",
    ),
    pytest.param(
        policy(host='steps = [\n  { after = "0s", send = "notice" }, # {\n  { send = "} {" }]'),
        4,
        "step 2: after is required",
        id="step-line-with-braces-in-strings",
    ),
    pytest.param(
        "[workflow]\nhost_notice = { steps = [{ after = '1h', send = 'chaser' }] }\n",
        2,
        "[workflow.host_notice]: step 1: a chaser to host",
        id="inline-workflow-table",
    ),
    pytest.param(
        'workflow.host_notice.steps = [\n  { after = "0s", send = "x" }]\n',
        2,
        'step 1: send "x"',
        id="dotted-steps-key",
    ),
    pytest.param(
        "# array of tables: the step's line falls back to the first steps header\n"
        '[[workflow.host_notice.steps]]\nafter = "0s"\nsend = "notice"\n'
        '[[workflow.host_notice.steps]]\nafter = "1h"\nsend = "nag"\n',
        2,
        'step 2: send "nag" is not known',
        id="array-of-tables",
    ),
]


@pytest.mark.parametrize(("content", "line", "problem"), BAD_FILES)
def test_bad_policy_names_file_line_and_problem(
    tmp_path: Path, content: str, line: int, problem: str
) -> None:
    path = write(tmp_path, content)
    with pytest.raises(ConfigError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert problem in message, message
    assert "\n" not in message and "\r" not in message


@pytest.mark.parametrize(("content", "line", "problem"), BAD_FILES[:6])
def test_parse_policy_names_the_given_file_name(content: str, line: int, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_policy(content, "site-policy.toml")
    assert str(caught.value).startswith(f"site-policy.toml:{line}: ")
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        pytest.param(b"\xff\n", ":1: the file is not valid UTF-8", id="not-utf8"),
        pytest.param(f"max_notice_urls = {'1' * 5000}\n".encode(), ": TOML syntax", id="digits"),
    ],
)
def test_unreadable_policy_names_the_file(tmp_path: Path, content: bytes, problem: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(ConfigError, match=problem) as caught:
        load_policy(path)
    assert str(caught.value).startswith(str(path))


def test_parse_policy_refuses_a_number_with_too_many_digits() -> None:
    with pytest.raises(ConfigError, match=r"^p\.toml:1: TOML syntax: a number has more than"):
        parse_policy(f"max_notice_urls = {'1' * 5000}\n", "p.toml")


@pytest.mark.parametrize(
    ("content", "line", "problem"),
    [
        pytest.param(
            'sweep_every = "1s"\nx = ' + "[" * 3000 + "]" * 3000 + "\n",
            2,
            "nested too deeply",
            id="deep-arrays",
        ),
        pytest.param(
            "# a\n\nx = " + "{ a = " * 3000 + "1" + " }" * 3000 + "\n",
            3,
            "nested too deeply",
            id="deep-inline-tables",
        ),
        pytest.param(
            'sweep_every = "1s"\n\nmax_notice_urls = ' + "1_" * 4400 + "1\n",
            3,
            "more than 4300 digits",
            id="digits-with-underscores",
        ),
    ],
)
def test_a_file_python_cannot_parse_names_its_line(content: str, line: int, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_policy(content, "p.toml")
    assert str(caught.value).startswith(f"p.toml:{line}: TOML syntax: "), str(caught.value)
    assert problem in str(caught.value)


def test_missing_policy_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"absent\.toml: cannot read the file"):
        load_policy(tmp_path / "absent.toml")


def test_shipped_policy_has_the_production_defaults(shipped: Policy) -> None:
    assert (shipped.sweep_every, shipped.recheck_every, shipped.notice_window) == (30, 900, 60)
    assert (shipped.confirm_checks, shipped.confirm_spacing) == (2, 300)
    assert (shipped.retrace_every, shipped.trace_retry_first, shipped.trace_retry_max) == (
        6 * 3600,
        60,
        3600,
    )
    assert shipped.max_notice_urls == 500
    assert shipped.overdue_after == 72 * 3600  # INHOPE's three days after the notice
    assert shipped.workflows == {
        "host_notice": (
            Step(0, 0, "notice", "host"),
            Step(1, 86400, "chaser", "host"),
            Step(2, 3 * 86400, "escalation", "upstream"),
            Step(3, 7 * 86400, "escalation", "registrar"),
        ),
        "hotline_referral": (
            Step(0, 0, "referral", "hotline"),
            Step(1, 3 * 86400, "notice", "host"),
        ),
        "no_partner": (Step(0, 0, "notice", "host"), Step(1, 86400, "chaser", "host")),
    }


def test_shipped_policy_explains_every_knob() -> None:
    path = Path(__file__).parents[1] / "workflows" / "data" / "policy.toml"
    lines = path.read_text(encoding="utf-8").splitlines()
    for key in KEYS:
        first = next(n for n, line in enumerate(lines) if line.startswith((key + " ", f"[{key}.")))
        assert lines[first - 1].startswith("#"), f"{key} has no comment above it"
    assert "`after` counts from the case's routing" in "\n".join(lines)


def test_demo_policy_runs_in_seconds() -> None:
    demo = load_demo_policy()
    assert (demo.sweep_every, demo.recheck_every, demo.notice_window) == (1, 2, 1)
    assert (demo.confirm_checks, demo.confirm_spacing) == (2, 1)
    assert (demo.retrace_every, demo.trace_retry_first, demo.trace_retry_max) == (5, 1, 5)
    assert demo.overdue_after == 30  # the demo shows overdue cases within a minute
    plan = {route: [(s.after, s.send, s.to) for s in demo.workflows[route]] for route in Route}
    assert plan == {
        "host_notice": [
            (0, "notice", "host"),
            (10, "chaser", "host"),
            (20, "escalation", "upstream"),
        ],
        "hotline_referral": [(0, "referral", "hotline"), (15, "notice", "host")],
        "no_partner": [(0, "notice", "host"), (10, "chaser", "host")],
    }


def test_knobs_default_when_absent() -> None:
    loaded = parse_policy(policy())
    assert loaded == Policy(
        sweep_every=30,
        recheck_every=900,
        confirm_checks=2,
        confirm_spacing=300,
        notice_window=60,
        retrace_every=21600,
        trace_retry_first=60,
        trace_retry_max=3600,
        max_notice_urls=500,
        workflows=loaded.workflows,
    )


@pytest.mark.parametrize(
    ("lines", "field", "value"),
    [
        pytest.param(['sweep_every = "500ms"'], "sweep_every", 0.5, id="milliseconds"),
        pytest.param(["sweep_every = 1.5"], "sweep_every", 1.5, id="bare-float-seconds"),
        pytest.param(['recheck_every = "90"'], "recheck_every", 90, id="bare-number-text"),
        pytest.param(['notice_window = "0s"'], "notice_window", 0, id="no-window"),
        pytest.param(["confirm_gone = { checks = 3 }"], "confirm_checks", 3, id="checks"),
        pytest.param(["confirm_gone = { checks = 3 }"], "confirm_spacing", 300, id="spacing-dflt"),
        pytest.param(['trace_retry = { max = "2h" }'], "trace_retry_first", 60, id="first-dflt"),
        pytest.param(
            ['trace_retry = { first = "1m", max = "1m" }'], "trace_retry_max", 60, id="eq"
        ),
        pytest.param(["max_notice_urls = 1"], "max_notice_urls", 1, id="one-url-per-notice"),
        pytest.param(['overdue_after = "90m"'], "overdue_after", 5400, id="overdue-after"),
        pytest.param([], "overdue_after", 72 * 3600, id="overdue-after-default"),
        pytest.param(["\ufeffsweep_every = 2"], "sweep_every", 2, id="byte-order-mark"),
    ],
)
def test_knob_values(lines: list[str], field: str, value: float) -> None:
    assert getattr(parse_policy(policy(*lines)), field) == value


REFER = '{ after = "0s", send = "referral" }'
ESCALATE = '{ after = "0s", send = "escalation", to = "upstream" }'


@pytest.mark.parametrize(
    ("workflow", "expected"),
    [
        pytest.param(
            steps('{ after = 0, send = "referral" }', '{ after = "1d", send = "escalation" }'),
            [(0, "referral", "hotline"), (86400, "escalation", "host")],
            id="default-recipients",
        ),
        pytest.param(
            steps(REFER, '{ after = "1d", send = "chaser", to = "hotline" }'),
            [(0, "referral", "hotline"), (86400, "chaser", "hotline")],
            id="chaser-to-the-hotline",
        ),
        pytest.param(
            steps(NOTICE, ESCALATE, '{ after = "2h", send = "chaser", to = "upstream" }'),
            [(0, "notice", "host"), (0, "escalation", "upstream"), (7200, "chaser", "upstream")],
            id="same-time-and-chaser-after-escalation",
        ),
        pytest.param(
            "[[workflow.hotline_referral.steps]]\nafter = '0s'\nsend = 'notice'",
            [(0, "notice", "host")],
            id="array-of-tables",
        ),
    ],
)
def test_valid_workflows(workflow: str, expected: list[tuple[float, str, str]]) -> None:
    loaded = parse_policy(policy(referral=workflow))
    got = loaded.workflows["hotline_referral"]
    assert [(s.after, s.send, s.to) for s in got] == expected
    assert [s.index for s in got] == list(range(len(expected)))


def test_workflows_cannot_be_changed() -> None:
    loaded = load_demo_policy()
    with pytest.raises(TypeError):
        loaded.workflows["host_notice"] = ()  # type: ignore[index]


@pytest.mark.parametrize(
    ("route", "done", "expected"),
    [
        pytest.param("host_notice", 0, (0, "notice", "host"), id="first"),
        pytest.param("host_notice", 1, (86400, "chaser", "host"), id="second"),
        pytest.param(Route.HOST_NOTICE, 2, (259200, "escalation", "upstream"), id="enum"),
        pytest.param("host_notice", 3, (604800, "escalation", "registrar"), id="registrar"),
        pytest.param("host_notice", 4, None, id="done"),
        pytest.param("hotline_referral", 1, (259200, "notice", "host"), id="referral-then"),
        pytest.param("no_partner", 2, None, id="no-partner-done"),
        pytest.param("no_partner", 99, None, id="past-the-end"),
    ],
)
def test_next_step(
    shipped: Policy, route: str, done: int, expected: tuple[float, str, str] | None
) -> None:
    step = next_step(shipped, route, done)
    assert (None if step is None else (step.after, step.send, step.to)) == expected
    assert step is None or step.index == done


def test_next_step_refuses_negative_count_and_unknown_route(shipped: Policy) -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        next_step(shipped, "host_notice", -1)
    with pytest.raises(KeyError):
        next_step(shipped, "takedown_now", 0)


@pytest.mark.parametrize(
    ("step", "routed_at", "due"),
    [
        pytest.param(Step(0, 0, "notice", "host"), 1_700_000_000.5, 1_700_000_000.5, id="at-once"),
        pytest.param(Step(1, 86400, "chaser", "host"), 1_700_000_000, 1_700_086_400, id="a-day"),
    ],
)
def test_step_due_at_counts_from_routing(step: Step, routed_at: float, due: float) -> None:
    assert step_due_at(step, routed_at) == due


@pytest.mark.parametrize(
    ("attempt", "rand", "delay"),
    [
        pytest.param(0, 1.0, 60, id="first-full"),
        pytest.param(0, 0.0, 30, id="first-half"),
        pytest.param(0, 0.5, 45, id="first-middle"),
        pytest.param(1, 1.0, 120, id="doubles"),
        pytest.param(5, 1.0, 1920, id="fifth"),
        pytest.param(6, 1.0, 3600, id="capped"),
        pytest.param(6, 0.0, 1800, id="capped-half"),
        pytest.param(10**6, 1.0, 3600, id="huge-attempt-no-overflow"),
        pytest.param(0, 7.0, 60, id="rand-above-one-clamped"),
        pytest.param(0, -1.0, 30, id="rand-below-zero-clamped"),
    ],
)
def test_trace_retry_delay(shipped: Policy, attempt: int, rand: float, delay: float) -> None:
    assert trace_retry_delay(shipped, attempt, lambda: rand) == pytest.approx(delay)


def test_trace_retry_delay_refuses_negative_attempt(shipped: Policy) -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        trace_retry_delay(shipped, -1, lambda: 0.5)


def test_trace_retry_delay_of_the_demo_policy_stays_in_seconds() -> None:
    demo = load_demo_policy()
    delays = [trace_retry_delay(demo, attempt, lambda: 1.0) for attempt in range(6)]
    assert delays == [1, 2, 4, 5, 5, 5]


def toml_value(value: Any) -> str:
    """Write a generated value as TOML (inline tables for dicts)."""
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
        )
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


GOOD_DURATIONS = st.sampled_from(["0s", "1s", "500ms", "15m", "24h", "3d", 0, 7, 1.5])
DURATIONS = st.one_of(
    GOOD_DURATIONS,
    st.sampled_from(["-1h", "1 day", "", "99999d"]),
    st.integers(-5, 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.booleans(),
)
ANY_STEPS = st.lists(
    st.fixed_dictionaries(
        {"after": DURATIONS, "send": st.sampled_from(["notice", "chaser", "referral", "x"])},
        optional={
            "to": st.sampled_from(["host", "hotline", "upstream", "abuse"]),
            "extra": st.integers(),
        },
    ),
    max_size=4,
)
# Mostly valid: a notice at once, then later steps in time order (repeats stay possible).
LATER = st.tuples(
    st.integers(0, 10**6),
    st.sampled_from([("chaser", "host"), ("escalation", "upstream"), ("referral", "hotline")]),
)
GOOD_STEPS = st.lists(LATER, max_size=3).map(
    lambda later: (
        [{"after": "0s", "send": "notice"}]
        + [{"after": f"{after}s", "send": send, "to": to} for after, (send, to) in sorted(later)]
    )
)
WORKFLOWS = st.one_of(
    st.fixed_dictionaries({route: st.fixed_dictionaries({"steps": GOOD_STEPS}) for route in Route}),
    st.dictionaries(
        st.sampled_from([*Route, "other"]),
        st.fixed_dictionaries({"steps": st.one_of(GOOD_STEPS, ANY_STEPS)}),
    ),
)
KNOB = st.one_of(GOOD_DURATIONS, DURATIONS)
POLICIES = st.fixed_dictionaries(
    {"workflow": WORKFLOWS},
    optional={
        "sweep_every": KNOB,
        "confirm_gone": st.fixed_dictionaries(
            {}, optional={"checks": st.integers(-1, 5), "spacing": KNOB}
        ),
        "trace_retry": st.fixed_dictionaries({}, optional={"first": KNOB, "max": KNOB}),
        "max_notice_urls": st.one_of(st.integers(-1, 10**4), st.text(max_size=3)),
    },
)
FRAGMENTS = [
    "[workflow.host_notice]",
    "[workflow.hotline_referral]",
    "[workflow.no_partner]",
    "[[workflow.no_partner.steps]]",
    "[workflow]",
    "[confirm_gone]",
    HOST,
    REFERRAL,
    NO_PARTNER,
    "steps = [",
    NOTICE + ",",
    CHASER,
    "]",
    'after = "1h"',
    'send = "chaser"',
    'sweep_every = "1s"',
    "confirm_gone = { checks = 0 }",
    'trace_retry = { first = "1h" }',
    'note = """',
    '"""',
]


def toml_lines(data: dict[str, Any]) -> str:
    """Write a generated policy: top-level knobs, then one table per workflow."""
    workflows = data.pop("workflow")
    lines = [f"{key} = {toml_value(value)}" for key, value in data.items()]
    for route, body in workflows.items():
        lines += [f"[workflow.{json.dumps(str(route))}]", f"steps = {toml_value(body['steps'])}"]
    return "\n".join(lines)


TEXT = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=20)), max_size=14).map(
        "\n".join
    ),
    POLICIES.map(toml_lines),
)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(text=TEXT)
def test_any_text_gives_a_policy_or_a_config_error(text: str) -> None:
    try:
        loaded = parse_policy(text, "fuzz.toml")
    except ConfigError as error:
        assert str(error).startswith("fuzz.toml") and "\n" not in str(error)
        return
    for route in Route:
        workflow = loaded.workflows[route]
        assert workflow and [step.index for step in workflow] == list(range(len(workflow)))
        assert all(a.after <= b.after for a, b in itertools.pairwise(workflow))
        assert all(s.to == "hotline" for s in workflow if s.send == "referral")
        assert workflow[0].send != "chaser"
        assert next_step(loaded, route, len(workflow)) is None
    assert 0 < trace_retry_delay(loaded, 3, lambda: 0.5) <= loaded.trace_retry_max


POLICY_NAMES = (*KEYS, *ROUTES, "steps", *STEP_KEYS, *SENDS, *RECIPIENTS, "checks", "spacing")
SOME_DURATION = st.sampled_from(["0s", "1s", "500ms", "30s", "15m", "24h", "3d", "-1h", "1 d"])
STEP_SHAPE = {
    "after": SOME_DURATION,
    "send": st.sampled_from(SENDS),
    "to": st.sampled_from(RECIPIENTS),
}
POLICY_SHAPE: tomlish.Schema = {
    **dict.fromkeys(
        ("sweep_every", "recheck_every", "notice_window", "retrace_every"), SOME_DURATION
    ),
    "max_notice_urls": st.integers(-1, 1000),
    "confirm_gone": {"checks": st.integers(-1, 5), "spacing": SOME_DURATION},
    "trace_retry": {"first": SOME_DURATION, "max": SOME_DURATION},
    "workflow": tomlish.Whole({route: {"steps": [STEP_SHAPE]} for route in ROUTES}),
}
STRUCTURES = st.one_of(
    tomlish.documents(POLICY_NAMES, POLICY_SHAPE),
    # The knobs are checked first: without them, the workflows' steps get fuzzed more.
    tomlish.documents(POLICY_NAMES, tomlish.Whole({"workflow": POLICY_SHAPE["workflow"]})),
)


@settings(max_examples=400, derandomize=True, deadline=None)
@given(text=st.one_of(TEXT, STRUCTURES))
def test_any_text_or_toml_structure_loads_or_names_file_and_line(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    path = write(tmp_path_factory.mktemp("fuzz"), text)
    try:
        load_policy(path)
    except ConfigError as error:
        assert re.match(rf"{re.escape(str(path))}:[1-9][0-9]*: \S", str(error)), str(error)
        assert "\n" not in str(error) and "\r" not in str(error)
