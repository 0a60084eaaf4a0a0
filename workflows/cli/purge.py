"""`takedown purge`: erase old cases' personal data, keeping what the statistics need."""

from __future__ import annotations

import json

from workflows.config.settings import Settings, parse_retention
from workflows.core.durations import format_duration
from workflows.core.figures import iso
from workflows.errors import InputError
from workflows.store.db import opened_store, utcnow
from workflows.store.purge import purge_closed, reclaim


def purge_command(settings: Settings, older_than: str | None, dry_run: bool, as_json: bool) -> int:
    """Purge (or list, with DRY_RUN) the cases closed more than OLDER_THAN ago."""
    if older_than is not None:
        period = parse_retention(older_than, "--older-than")
    elif settings.retention is not None:
        period = settings.retention
    else:
        raise InputError("--older-than: required when TAKEDOWN_RETENTION is not set, e.g. 365d")
    with opened_store(settings) as sessions:
        report = purge_closed(sessions, utcnow(), period, dry_run=dry_run)
        if report.ids and not dry_run:
            reclaim(sessions.kw["bind"], wait=True)
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
        return 0
    verb = "would purge" if dry_run else "purged"
    print(
        f"{verb} {len(report.ids)} case{'s' * (len(report.ids) != 1)} removed or closed "
        f"before {iso(report.before)} (older than {format_duration(period)})"
        + ("; dry run: nothing changed" if dry_run else "")
    )
    return 0
