"""A case's events as the case page's timeline: one readable line per thing that happened."""

from __future__ import annotations

import datetime as dt
from typing import Any

from workflows.kinds import CLOSE_REASONS, EventKind, NoticeKind
from workflows.store.cases import SYSTEM
from workflows.web.words import route_words

# What each event kind reads as, one entry per EventKind (tests/test_kinds.py checks it);
# the detail's fields fill in the rest (see describe()).
TITLES: dict[str, str] = {
    EventKind.REPORTED: "Reported",
    EventKind.JOINED: "Reported again: joined this open case",
    EventKind.ROUTED: "Routed",
    EventKind.TRACE_FAILED: "Trace failed",
    EventKind.NEEDS_ANALYST: "Needs an analyst",
    EventKind.STEP_DUE: "Step due",
    EventKind.STEP_DELAYED: "Step delayed",
    EventKind.STEP_SKIPPED: "Step skipped",
    EventKind.STEP_CANCELLED: "Step cancelled",
    EventKind.NOTICE_SENT: "Notice sent",
    EventKind.NOTICE_DEFERRED: "Notice deferred",
    EventKind.NOTICE_FAILED: "Notice refused",
    EventKind.NOTICE_UNCERTAIN: "Notice uncertain",
    EventKind.NOTICE_RESEND: "Notice to be sent again",
    EventKind.ESCALATED_AFTER_REFUSAL: "Escalated after a refusal",
    EventKind.CHECKED: "Checked",
    EventKind.HOPPED: "Content moved",
    EventKind.REMOVED: "Removed",
    EventKind.CLOSED: "Closed",
    EventKind.REOPENED: "Reopened",
    EventKind.NOTE: "Note",
    EventKind.RECHECK_REQUESTED: "Re-check requested",
    EventKind.HELD: "Held",
    EventKind.HOLD_CHANGED: "Hold changed",
    EventKind.HOLD_RELEASED: "Hold released",
    EventKind.HOLD_ENDED: "Hold ended",
    EventKind.PURGED: "Purged",
    EventKind.CONTENT_CHANGED: "Content changed: confirm removal",
    EventKind.CONFIRMED: "Confirmed by an analyst",
    EventKind.RESUMED: "The content is back: chasing resumes",
    EventKind.CHASER_HELD: "Chaser held: the last check saw it gone",
    EventKind.REAPPEARED: "Reappeared",
    EventKind.WATCH_ENDED: "Watch ended",
    EventKind.BOUNCED: "Bounced",
    EventKind.DELIVERY_DELAYED: "Delivery delayed",
    EventKind.REPLY: "Reply",
    EventKind.AUTO_REPLY: "Auto-reply",
    EventKind.CONTACT_FALLBACK: "Fallback contact",
    EventKind.FORM_TASK: "Web form to submit",
    EventKind.FORM_SUBMITTED: "Web form submitted",
    EventKind.ONE_OFF_NOTICE: "One-off notice",
}

_NOTICE_EVENTS = (
    EventKind.NOTICE_SENT,
    EventKind.NOTICE_FAILED,
    EventKind.NOTICE_UNCERTAIN,
    EventKind.NOTICE_RESEND,
)


# Events whose reason is part of their line ("Closed · Duplicate of another case · …").
_REASON_IN_TEXT = (EventKind.CLOSED, EventKind.ONE_OFF_NOTICE)
_CLOSE_LABELS: dict[str, str] = {str(code): label for code, label in CLOSE_REASONS.items()}


def when(iso: str | None) -> str:
    """Return an ISO 8601 time as '2026-11-25 12:01:03 UTC': every time the desk shows says
    its zone, and it is UTC, the zone of the notices, the API and the partner hotlines."""
    if not iso:
        return "–"
    return dt.datetime.fromisoformat(iso).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def timeline(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the timeline entries of EVENTS; runs of identical checks become one entry."""
    entries: list[dict[str, Any]] = []
    for event in events:
        title, text = describe(event["kind"], event["detail"] or {})
        previous = entries[-1] if entries else None
        if (
            event["kind"] == EventKind.CHECKED
            and previous is not None
            and previous["kind"] == EventKind.CHECKED
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
                "human": event["actor"] != SYSTEM and event["kind"] != EventKind.REPORTED,
                "title": title,
                "text": text,
                "base": text,
                "times": 1,
                "note": detail.get("text") or detail.get("reason")
                if event["actor"] != SYSTEM and event["kind"] not in _REASON_IN_TEXT
                else None,
            }
        )
    return entries


def describe(kind: str, d: dict[str, Any]) -> tuple[str, str]:
    """Return (title, text) for one event."""
    title = TITLES.get(kind, kind.replace("_", " ").capitalize())
    if kind == EventKind.REPORTED:
        return title, _join(
            f"ref {d['reference']}" if d.get("reference") else "", d.get("category") or ""
        )
    if kind == EventKind.ROUTED:
        via = f" via {d['cdn']}" if d.get("cdn") else ""
        to = ", ".join(d.get("abuse") or [])
        return (
            f"Routed: {route_words(d.get('route'))}",
            f"{d.get('country') or '?'} · {d.get('network') or '?'}{via} → {to}",
        )
    if kind in _NOTICE_EVENTS:
        text = f"N-{int(d.get('notice') or 0):06d} to {d.get('to')}"
        if kind == EventKind.NOTICE_FAILED and d.get("reply"):
            text += f": {d['reply']}"
        if d.get("outcome"):  # a supervisor's decision about an uncertain notice
            text += ", as decided by a supervisor"
        kind_of = str(d.get("kind_of") or NoticeKind.NOTICE)
        return title.replace("Notice", kind_of.capitalize()), text
    if kind == EventKind.CHECKED:
        status = f"HTTP {d['status']}" if d.get("status") else ""
        reason = d.get("reason") if d.get("reason") != status else ""
        return title, _join(str(d.get("outcome")), status, reason or "")
    if kind in (EventKind.STEP_DUE, EventKind.STEP_CANCELLED):
        return f"{str(d.get('send')).capitalize()} due" if kind == EventKind.STEP_DUE else title, (
            f"to the {d.get('to')}" + (f" ({d['recipients']})" if d.get("recipients") else "")
        )
    if kind in (EventKind.TRACE_FAILED, EventKind.NEEDS_ANALYST):
        retry = " (retrying)" if d.get("transient") else ""
        return title, f"{d.get('reason') or ''}{retry}"
    if kind == EventKind.HOPPED:
        return (
            title,
            f"to {d.get('to')} in {d.get('country')}: re-routed: {route_words(d.get('route'))}",
        )
    if kind == EventKind.ESCALATED_AFTER_REFUSAL:
        return title, f"the {d.get('send')} to the {d.get('to')} is brought forward"
    if kind == EventKind.CLOSED:
        code = str(d.get("code") or "")  # none on a close before reasons had codes
        # Reads "Closed · Duplicate of another case · see case 12 · sue" on the page.
        return title, "· " + _join(
            _CLOSE_LABELS.get(code, code) or "no reason given", str(d.get("reason") or "")
        )
    if kind == EventKind.ONE_OFF_NOTICE:
        kind_of = str(d.get("kind_of") or NoticeKind.NOTICE)
        text = f"{kind_of} N-{int(d.get('notice') or 0):06d} to {d.get('to')}"
        return title, _join(text, str(d.get("reason") or ""))
    if kind in (EventKind.HELD, EventKind.HOLD_CHANGED):
        return title, f"until {when(d.get('until'))}"
    if kind == EventKind.BOUNCED:
        return title, f"N-{int(d.get('notice') or 0):06d} to {d.get('to')}: {d.get('reason')}"
    if kind == EventKind.CONTACT_FALLBACK:
        to = ", ".join(d.get("to") or [])
        return title, f"{d.get('from')} cannot be reached: the workflow starts again to {to}"
    if kind in (EventKind.FORM_TASK, EventKind.FORM_SUBMITTED):
        text = f"N-{int(d.get('notice') or 0):06d}: {d.get('name') or ''} ({d.get('to')})"
        return title, _join(text, f"ref {d['reference']}" if d.get("reference") else "")
    if kind in (EventKind.REPLY, EventKind.AUTO_REPLY, EventKind.DELIVERY_DELAYED):
        # The text is shown as text, never as markup (the templates escape it).
        return title, _join(f"from {d.get('from')}", str(d.get("subject") or ""))
    return title, ""


def _join(*parts: str) -> str:
    return " · ".join(part for part in parts if part)
