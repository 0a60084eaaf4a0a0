"""Read and validate the workflow policy file into `workflows.core.policy.Policy`.

The policy is an operator-editable TOML file: `data/policy.toml` documents every knob and
DESIGN.md § Workflow policy is the contract. Every problem is a `ConfigError` naming the
file and line, so start-up stops on it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping
from importlib.resources import as_file, files
from pathlib import Path
from types import MappingProxyType
from typing import Any

from workflows.config.tomlfile import (
    Entry,
    Source,
    line_of,
    load_toml,
    parse_toml,
    quote,
    table_name,
    type_name,
)
from workflows.core.durations import format_duration, parse_duration
from workflows.core.policy import RECIPIENTS, ROUTES, SENDS, Policy, Step
from workflows.errors import ConfigError
from workflows.kinds import NoticeKind, Party

_SCALARS = (
    "sweep_every",
    "recheck_every",
    "notice_window",
    "retrace_every",
    "max_notice_urls",
    "changed_checks",
    "inbox_every",
    "dead_contact_for",
    "overdue_after",
)
KEYS = (*_SCALARS, "confirm_gone", "trace_retry", "watch_removed", "workflow")
STEP_KEYS = ("after", "send", "to")
# Ten years: a longer duration is surely a typo, and the cap keeps every due time finite.
MAX_SECONDS = 3650 * 86400.0
_DURATION = "a duration like 30s, 15m, 24h or 3d"
_STEP_EXAMPLE = '{ after = "24h", send = "chaser" }'
_STEPS = re.compile(r"""(?:^|[\s.{,])(?:steps|"steps"|'steps')\s*=\s*\[""", re.MULTILINE)
# TOML tokens that matter when finding the steps of an array: strings and comments are
# matched whole, so brackets inside them do not count.
_TOKEN = re.compile(
    r'"""[\s\S]*?"""'  # multi-line basic string
    r"|'''[\s\S]*?'''"  # multi-line literal string
    r'|"(?:[^"\\\n]|\\.)*"'  # basic string
    r"|'[^'\n]*'"  # literal string
    r"|#.*|[\[\]{}\n]"  # comment, bracket, line break
)


def load_policy(path: Path | None = None) -> Policy:
    """Load and validate a policy file; None loads the shipped one."""
    if path is None:
        return _load_shipped("policy.toml")
    data, text = load_toml(path)
    return _policy(Source(path, text), data)


def load_demo_policy() -> Policy:
    """Load the shipped seconds-scale policy used by the demo and the tests."""
    return _load_shipped("demo-policy.toml")


def _load_shipped(name: str) -> Policy:
    """Load a policy file shipped in the package's data folder."""
    with as_file(files("workflows") / "data" / name) as shipped:
        return load_policy(shipped)


def parse_policy(text: str, name: str = "policy.toml") -> Policy:
    """Validate policy TOML text, naming `name` and the line of the first problem."""
    text = text.removeprefix("\ufeff")
    return _policy(Source(Path(name), text), parse_toml(Path(name), text))


def _policy(source: Source, data: dict[str, Any]) -> Policy:
    """Validate parsed policy data; every knob but the workflows has a default."""
    top = Entry(source, (), data)
    top.check_keys(KEYS)
    confirm = _table(top, "confirm_gone", '{ checks = 2, spacing = "5m" }', ("checks", "spacing"))
    retry = _table(top, "trace_retry", '{ first = "1m", max = "1h" }', ("first", "max"))
    first = _duration(retry, "first", "1m", positive=True)
    longest = _duration(retry, "max", "1h", positive=True)
    if longest < first:
        raise retry.error("max", "max must not be shorter than first")
    watch = _table(top, "watch_removed", '{ every = "1d", for = "90d" }', ("every", "for"))
    return Policy(
        sweep_every=_duration(top, "sweep_every", "30s", positive=True),
        recheck_every=_duration(top, "recheck_every", "15m", positive=True),
        confirm_checks=_count(confirm, "checks", 2),
        confirm_spacing=_duration(confirm, "spacing", "5m"),
        notice_window=_duration(top, "notice_window", "60s"),
        retrace_every=_duration(top, "retrace_every", "6h", positive=True),
        trace_retry_first=first,
        trace_retry_max=longest,
        max_notice_urls=_count(top, "max_notice_urls", 500),
        workflows=_workflows(top),
        changed_checks=_count(top, "changed_checks", 2),
        watch_every=_duration(watch, "every", "1d", positive=True),
        watch_for=_duration(watch, "for", "90d"),
        inbox_every=_duration(top, "inbox_every", "1m", positive=True),
        dead_contact_for=_duration(top, "dead_contact_for", "7d"),
        overdue_after=_duration(top, "overdue_after", "72h", positive=True),
    )


def _table(parent: Entry, key: str, example: str, keys: Collection[str]) -> Entry:
    """Return the sub-table `key` (empty when absent), refusing other types and keys."""
    value = parent.data.get(key, {})
    if not isinstance(value, dict):
        raise parent.error(key, f"{key} must be a table like {example}, not {type_name(value)}")
    entry = Entry(parent.source, (*parent.table, key), value)
    entry.check_keys(keys)
    return entry


def _duration(entry: Entry, key: str, default: str, *, positive: bool = False) -> float:
    """Return a duration knob in seconds; zero is refused where it would spin a loop."""
    try:
        seconds = _seconds(entry.data.get(key, default))
    except ValueError as exc:
        raise entry.error(key, f"{key} {exc}") from None
    if positive and seconds == 0:
        raise entry.error(key, f"{key} must be longer than 0s")
    return seconds


def _seconds(value: object) -> float:
    """Return a duration's seconds ("24h", or a number of seconds); ValueError names why not."""
    if isinstance(value, str):
        if value.strip().startswith("-"):
            raise ValueError(f"{quote(value)} must not be negative")
        try:
            number: float = parse_duration(value)
        except ConfigError:
            raise ValueError(f"{quote(value)} is not {_DURATION}") from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = value
    else:
        raise ValueError(f"must be {_DURATION}, not {type_name(value)}")
    if isinstance(number, float) and math.isnan(number):  # TOML allows nan
        raise ValueError(f"must be {_DURATION}, not nan")
    if number < 0:
        raise ValueError(f"{quote(value)} must not be negative")
    if not number <= MAX_SECONDS:  # also catches inf, and ints too big for a float
        raise ValueError(f"{quote(value)} is longer than {format_duration(MAX_SECONDS)}")
    return float(number)


def _count(entry: Entry, key: str, default: int) -> int:
    """Return a whole-number knob of at least 1."""
    value = entry.data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise entry.error(key, f"{key} must be a whole number, not {type_name(value)}")
    if value < 1:
        raise entry.error(key, f"{key} must be at least 1, not {value}")
    return value


def _workflows(top: Entry) -> Mapping[str, tuple[Step, ...]]:
    """Return the steps of every route's workflow; each route must have one."""
    tables = _table(top, "workflow", "[workflow.host_notice]", ROUTES)
    workflows = {}
    for route in ROUTES:
        if route not in tables.data:
            raise tables.error(None, f"[workflow.{route}] is missing: every route needs one")
        workflow = _table(tables, route, "{ steps = [...] }", ("steps",))
        workflows[route] = _steps(workflow)
    return MappingProxyType(workflows)


def _steps(workflow: Entry) -> tuple[Step, ...]:
    """Build a workflow's steps, naming the line of the step at fault."""
    raw = workflow.array("steps", f"[{_STEP_EXAMPLE}]")
    if not raw:
        raise workflow.error("steps", "steps must list at least one step")
    lines = _step_lines(workflow, len(raw))

    def fail(index: int, problem: str) -> ConfigError:
        label = table_name(workflow.table)
        path = workflow.source.path
        return ConfigError(f"{path}:{lines[index]}: [{label}]: step {index + 1}: {problem}")

    steps = tuple(_step(index, item, fail) for index, item in enumerate(raw))
    _check_sequence(steps, [item["after"] for item in raw], fail)
    return steps


def _step(index: int, item: object, fail: Callable[[int, str], ConfigError]) -> Step:
    """Build one step from its table, filling in the default recipient."""
    if not isinstance(item, dict):
        raise fail(index, f"must be a table like {_STEP_EXAMPLE}, not {type_name(item)}")
    for key in item:
        if key not in STEP_KEYS:
            raise fail(index, f"unknown key {quote(key)} (known keys: {', '.join(STEP_KEYS)})")
    if "after" not in item:
        raise fail(index, "after is required: how long after the case's routing")
    try:
        after = _seconds(item["after"])
    except ValueError as exc:
        raise fail(index, f"after {exc}") from None
    send = item.get("send")
    if send not in SENDS:
        shown = "is required" if send is None else f"{quote(send)} is not known"
        raise fail(index, f"send {shown}: use one of {', '.join(SENDS)}")
    to = item.get("to", Party.HOTLINE.value if send == NoticeKind.REFERRAL else Party.HOST.value)
    if to not in RECIPIENTS:
        raise fail(index, f"to {quote(to)} is not known: use one of {', '.join(RECIPIENTS)}")
    if send == NoticeKind.REFERRAL and to != Party.HOTLINE:
        raise fail(index, f'a referral goes to the hotline, not {to}: use send = "notice"')
    return Step(index=index, after=after, send=send, to=to)


def _check_sequence(
    steps: tuple[Step, ...], written: list[Any], fail: Callable[[int, str], ConfigError]
) -> None:
    """Refuse steps out of time order, repeated steps and chasers with nothing to chase."""
    opened: set[str] = set()  # recipients already sent a first message
    seen: dict[tuple[float, str, str], int] = {}
    for step in steps:
        if step.index and step.after < steps[step.index - 1].after:
            now, before = quote(written[step.index]), quote(written[step.index - 1])
            problem = f"after = {now} is sooner than step {step.index}'s {before}"
            raise fail(step.index, f"{problem}: list the steps in time order")
        # A chaser threads to an earlier message to the same recipient (In-Reply-To).
        if step.send == NoticeKind.CHASER and step.to not in opened:
            need = f"an earlier notice, referral or escalation to {step.to}"
            raise fail(step.index, f"a chaser to {step.to} needs {need} to follow up")
        if step.send != NoticeKind.CHASER:
            opened.add(step.to)
        key = (step.after, step.send, step.to)
        if key in seen:  # the same message twice: never send a notice twice
            raise fail(step.index, f"repeats step {seen[key] + 1}")
        seen[key] = step.index


def _step_lines(workflow: Entry, count: int) -> list[int]:
    """Return the line of each step's inline table, or the `steps` line where not found."""
    text = workflow.source.text
    steps_line = line_of(text, workflow.table, "steps")
    lines = text.split("\n")  # numbered as TOML and line_of do: LF only
    start = sum(len(line) + 1 for line in lines[: steps_line - 1])
    opened = _STEPS.search(text, start, start + len(lines[steps_line - 1]))
    found = [] if opened is None else _inline_tables(text, opened.end(), steps_line)
    return found if len(found) == count else [steps_line] * count


def _inline_tables(text: str, pos: int, line: int) -> list[int]:
    """Return the line of each `{` directly inside the array that opens just before `pos`."""
    found: list[int] = []
    depth = 1
    for token in _TOKEN.finditer(text, pos):
        mark = token.group()
        if mark == "\n" or mark[0] in "\"'#":  # a line break, string or comment
            line += mark.count("\n")
        elif mark in "[{":
            found += [line] if depth == 1 and mark == "{" else []
            depth += 1
        else:
            depth -= 1
            if not depth:
                break
    return found
