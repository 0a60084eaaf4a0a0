"""`takedown trace`: trace one URL now and print where it is hosted and where it goes."""

from __future__ import annotations

import json

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
    if trace.cdn:
        lines.append(f"CDN       {trace.cdn} (its abuse desk forwards to the origin host)")
    if trace.abuse:
        label = "fallback contacts, no abuse role" if trace.abuse_fallback else ""
        lines.append(f"Abuse     {', '.join(trace.abuse)}" + (f"  ({label})" if label else ""))
    if trace.hotline:
        lines.append(f"Hotline   {trace.hotline['name']} <{trace.hotline['email']}>")
    lines.append(f"Route     {trace.route or 'none'}")
    if trace.reason:
        lines.append(f"Reason    {trace.reason}")
    lines += [f"Note      {note}" for note in trace.notes]
    return "\n".join(lines)


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
        lines.append("abuse: " + ", ".join(n.abuse) + (" (fallback)" if n.abuse_fallback else ""))
    if n.cdn:
        lines.append(f"CDN: {n.cdn['name']}")
    if n.error:
        lines.append(f"lookup failed: {n.error['message']}")
    return lines
