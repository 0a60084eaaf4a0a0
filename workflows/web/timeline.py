"""A case's events as the case page's timeline: one readable line per thing that happened."""

from __future__ import annotations

import datetime as dt
from typing import Any

from workflows.store.cases import SYSTEM

# What each event kind reads as; the detail's fields fill in the rest (see describe()).
TITLES = {
    "reported": "Reported",
    "joined": "Reported again: joined this open case",
    "routed": "Routed",
    "trace_failed": "Trace failed",
    "needs_analyst": "Needs an analyst",
    "step_due": "Step due",
    "step_cancelled": "Step cancelled",
    "notice_sent": "Notice sent",
    "notice_failed": "Notice refused",
    "notice_uncertain": "Notice uncertain",
    "notice_resend": "Notice to be sent again",
    "checked": "Checked",
    "removed": "Removed",
    "hopped": "Content moved",
    "escalated_after_refusal": "Escalated after a refusal",
    "closed": "Closed",
    "reopened": "Reopened",
    "note": "Note",
    "recheck_requested": "Re-check requested",
    "held": "Held",
    "hold_changed": "Hold changed",
    "hold_released": "Hold released",
    "hold_ended": "Hold ended",
}


def when(iso: str | None) -> str:
    """Return an ISO 8601 UTC time as '2026-11-25 12:01:03' (the page says times are UTC)."""
    if not iso:
        return "–"
    return dt.datetime.fromisoformat(iso).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def timeline(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the timeline entries of EVENTS; runs of identical checks become one entry."""
    entries: list[dict[str, Any]] = []
    for event in events:
        title, text = describe(event["kind"], event["detail"] or {})
        previous = entries[-1] if entries else None
        if (
            event["kind"] == "checked"
            and previous is not None
            and previous["kind"] == "checked"
            and previous["base"] == text
        ):
            previous["times"] += 1
            previous["text"] = f"{text} (×{previous['times']}, last {when(event['at'])})"
            continue
        detail = event["detail"] or {}
        entries.append(
            {
                "at": event["at"],
                "when": when(event["at"]),
                "kind": event["kind"],
                "actor": event["actor"],
                "human": event["actor"] != SYSTEM and event["kind"] != "reported",
                "title": title,
                "text": text,
                "base": text,
                "times": 1,
                "note": detail.get("text") or detail.get("reason")
                if event["actor"] != SYSTEM
                else None,
            }
        )
    return entries


def describe(kind: str, d: dict[str, Any]) -> tuple[str, str]:
    """Return (title, text) for one event."""
    title = TITLES.get(kind, kind.replace("_", " ").capitalize())
    if kind == "reported":
        return title, _join(
            f"ref {d['reference']}" if d.get("reference") else "", d.get("category") or ""
        )
    if kind == "routed":
        via = f" via {d['cdn']}" if d.get("cdn") else ""
        to = ", ".join(d.get("abuse") or [])
        return (
            f"Routed {d.get('route')}",
            f"{d.get('country') or '?'} · {d.get('network') or '?'}{via} → {to}",
        )
    if kind in ("notice_sent", "notice_failed", "notice_uncertain", "notice_resend"):
        text = f"N-{int(d.get('notice') or 0):06d} to {d.get('to')}"
        if kind == "notice_failed" and d.get("reply"):
            text += f": {d['reply']}"
        if d.get("outcome"):  # a supervisor's decision about an uncertain notice
            text += ", as decided by a supervisor"
        return title.replace("Notice", str(d.get("kind_of") or "notice").capitalize()), text
    if kind == "checked":
        status = f"HTTP {d['status']}" if d.get("status") else ""
        reason = d.get("reason") if d.get("reason") != status else ""
        return title, _join(str(d.get("outcome")), status, reason or "")
    if kind in ("step_due", "step_cancelled"):
        return f"{str(d.get('send')).capitalize()} due" if kind == "step_due" else title, (
            f"to the {d.get('to')}" + (f" ({d['recipients']})" if d.get("recipients") else "")
        )
    if kind in ("trace_failed", "needs_analyst"):
        retry = " (retrying)" if d.get("transient") else ""
        return title, f"{d.get('reason') or ''}{retry}"
    if kind == "hopped":
        return title, f"to {d.get('to')} in {d.get('country')}: re-routed {d.get('route')}"
    if kind == "escalated_after_refusal":
        return title, f"the {d.get('send')} to the {d.get('to')} is brought forward"
    if kind in ("held", "hold_changed"):
        return title, f"until {when(d.get('until'))} UTC"
    return title, ""


def _join(*parts: str) -> str:
    return " · ".join(part for part in parts if part)
