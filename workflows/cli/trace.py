"""`takedown trace`: trace one URL now and print where it is hosted and where it goes."""

from __future__ import annotations

import json
from typing import Any

from workflows.config.settings import load_settings
from workflows.core.urls import normalize_url
from workflows.trace.tracer import NetworkTrace, Trace, Tracer


def trace_command(raw_url: str, *, as_json: bool) -> int:
    """Trace RAW_URL and print it; exit 1 when no route applies."""
    url = normalize_url(raw_url)
    settings = load_settings()
    tracer = Tracer.from_settings(settings)
    try:
        trace = tracer.trace(url)
    finally:
        tracer.close()
    if as_json:
        print(json.dumps(trace.as_dict(), indent=2, ensure_ascii=False))
    else:
        print(format_trace(trace))
    return 0 if trace.route else 1


def format_trace(trace: Trace) -> str:
    """Return a readable summary of TRACE."""
    lines = [f"URL       {trace.url}"]
    host = (
        trace.host if trace.display_host == trace.host else (f"{trace.host} ({trace.display_host})")
    )
    lines.append(f"Host      {host}")
    if trace.cnames:
        lines.append(f"CNAMEs    {' → '.join([trace.host, *trace.cnames])}")
    for network in trace.networks:
        lines.append(f"Address   {network.ip}")
        lines += ["          " + part for part in _network_lines(network)]
    lines.append(f"Country   {trace.country or '-'}")
    if trace.platform:
        lines.append(f"Platform  {_platform_line(trace.platform)}")
    if trace.cdn:
        lines.append(f"CDN       {trace.cdn} (its abuse desk forwards to the origin host)")
    if trace.platform and trace.network_abuse:
        source = trace.network_abuse_source or "-"
        lines.append(
            f"Network   {', '.join(trace.network_abuse)}  (from {source}: after the platform)"
        )
    if trace.abuse:
        label = f"from {trace.abuse_source or '-'}"
        label += ": fallback contacts, no abuse desk" if trace.abuse_fallback else ""
        lines.append(f"Abuse     {', '.join(trace.abuse)}  ({label})")
    if trace.route:
        lines.append(f"Notice    {_noticed(trace)}")
    if trace.hotline:
        lines.append(f"Hotline   {trace.hotline['name']} <{trace.hotline['email']}>")
    lines.append(f"Route     {trace.route or 'none'}")
    if trace.reason:
        lines.append(f"Reason    {trace.reason}")
    lines += [f"Note      {note}" for note in trace.notes]
    return "\n".join(lines)


def _platform_line(platform: dict[str, Any]) -> str:
    """Return the platform's name, the rule's host and its desk."""
    desk = platform.get("form") or ", ".join(platform.get("abuse") or [])
    return f"{platform.get('name')} (host under {platform.get('matched')}): {desk}"


def _noticed(trace: Trace) -> str:
    """Say which party the first notice goes to."""
    if trace.hotline:
        return f"the partner hotline, {trace.hotline.get('name') or trace.hotline.get('email')}"
    if trace.platform and trace.abuse_source == "platform":
        return f"the platform, {trace.platform.get('name')} (the network comes after it)"
    if trace.cdn and trace.abuse_source == "cdn":
        return f"the CDN, {trace.cdn}"
    return "the network's abuse contact"


def _network_lines(n: NetworkTrace) -> list[str]:
    if n.special_use:
        return [f"special-use address ({n.special_use}): not looked up, never fetched"]
    lines = []
    if n.asn is not None:
        lines.append(f"AS{n.asn} {n.as_name or ''}".rstrip())
    if n.cidr:
        cached = " (cached)" if n.cached else ""
        lines.append(f"{n.cidr} {n.name or ''} {n.country or ''}".rstrip() + cached)
    if n.abuse:
        lines.append("abuse: " + ", ".join(n.abuse) + f" (from {n.abuse_source or '-'})")
    if n.cdn:
        lines.append(f"CDN: {n.cdn['name']}")
    if n.error:
        lines.append(f"lookup failed: {n.error['message']}")
    return lines
