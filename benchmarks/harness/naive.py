"""The naive pipeline of issue 11: the engine's own libraries, one URL at a time.

That is how the field's open-source tools do it: for each URL, resolve the name, look the
address up in RDAP, mail one notice, and later fetch the URL again, each step waiting for
the one before. Here every step is the engine's code, so the ratio measures the engine's
design, not a slower library:

    intake    `Tracer.trace` (workflows/trace: DNS with dnspython, the origin AS over DNS,
              RDAP) with its RDAP cache off (TAKEDOWN_RDAP_CACHE_TTL=1ms), no shared
              Redis and no DNS cache, then one e-mail for that URL to its abuse desk with
              smtplib, on a new SMTP connection
    recheck   `Fetcher.fetch` (workflows/recheck/fetch.py) of each URL, one after another,
              its resolver without a DNS cache

The naive pipeline is linear by construction (every URL costs the same: nothing is
shared), so it is measured on a sample (the first URLs of the workload, which touch as
many host names and networks as they can) and its time per URL is extrapolated.
"""

from __future__ import annotations

import smtplib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage

from harness.metrics import Counters
from harness.stack import SENDER, EngineStack
from workflows.config.settings import Settings, load_settings
from workflows.core.urls import normalize_url
from workflows.kinds import CheckOutcome
from workflows.recheck.fetch import DEFAULT_USER_AGENT, Fetcher
from workflows.trace.dns import make_resolver
from workflows.trace.tracer import Tracer

SAMPLE_URLS = 200
SAMPLE_SECONDS = 60.0


@dataclass
class NaiveRun:
    """One measured sample of the naive pipeline."""

    kind: str  # intake | recheck
    measured: int  # URLs done
    seconds: float
    counters: Counters  # what the simulated servers saw during the sample
    failed: int  # URLs the pipeline could not finish (no route, no mail, not present)

    @property
    def per_url(self) -> float:
        """Return the seconds one URL takes."""
        return self.seconds / max(self.measured, 1)

    def extrapolate(self, urls: int) -> float:
        """Return the seconds the naive pipeline would take for URLS URLs."""
        return self.per_url * urls

    def per_url_count(self, value: int) -> float:
        """Return a counter's value per URL of the sample."""
        return value / max(self.measured, 1)

    def describe(self, urls: int) -> str:
        """Say what was measured and how it was extrapolated."""
        return (
            f"naive {self.kind}: measured {self.measured} URLs in {self.seconds:.1f} s "
            f"({1000 * self.per_url:.0f} ms per URL), extrapolated to {urls:,} URLs: "
            f"{self.extrapolate(urls):,.0f} s"
        )


def naive_settings(stack: EngineStack) -> Settings:
    """Return the engine's settings for the naive pipeline: every cache off."""
    return load_settings({**stack.env, "TAKEDOWN_RDAP_CACHE_TTL": "1ms"})


def naive_intake(stack: EngineStack, urls: Sequence[str], limit: int, seconds: float) -> NaiveRun:
    """Trace each URL and mail its desk, one after another, on a sample of URLS."""
    settings = naive_settings(stack)
    tracer = Tracer.from_settings(settings)
    tracer.resolver.cache = None
    try:

        def one(url: str) -> bool:
            trace = tracer.trace(normalize_url(url))
            if not trace.abuse:
                return False
            mail_one(stack, url, trace.abuse)
            return True

        return _measure(stack, "intake", urls, limit, seconds, one)
    finally:
        tracer.close()


def mail_one(stack: EngineStack, url: str, recipients: Sequence[str]) -> None:
    """Send one notice about URL to RECIPIENTS on a new SMTP connection."""
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = ", ".join(recipients)
    message["Subject"] = f"Abuse report: {url}"
    message.set_content(f"The following URL carries illegal content; please remove it:\n{url}\n")
    with smtplib.SMTP(stack.smtp.host, stack.smtp.port, timeout=30) as client:
        client.send_message(message)


def naive_recheck(stack: EngineStack, urls: Sequence[str], limit: int, seconds: float) -> NaiveRun:
    """Fetch each URL, one after another, on a sample of URLS."""
    settings = naive_settings(stack)
    resolver = make_resolver(settings.dns_servers, settings.dns_timeout)
    resolver.cache = None
    fetcher = Fetcher(
        resolver,
        deadline=settings.fetch_deadline,
        max_bytes=settings.fetch_max_bytes,
        user_agent=settings.fetch_user_agent or DEFAULT_USER_AGENT,
    )
    with fetcher:
        return _measure(
            stack,
            "recheck",
            urls,
            limit,
            seconds,
            lambda url: fetcher.fetch(url).outcome == CheckOutcome.PRESENT,
        )


def _measure(
    stack: EngineStack,
    kind: str,
    urls: Sequence[str],
    limit: int,
    seconds: float,
    one: Callable[[str], bool],
) -> NaiveRun:
    """Run ONE on URLS in order until LIMIT URLs or SECONDS have passed."""
    before = stack.counters()
    started = time.monotonic()
    done = failed = 0
    for url in urls[:limit]:
        if not one(url):
            failed += 1
        done += 1
        if time.monotonic() - started >= seconds:
            break
    elapsed = time.monotonic() - started
    return NaiveRun(kind, done, elapsed, stack.counters().since(before), failed)
