"""Everything a worker needs to do the work, built once per process from Settings."""

from __future__ import annotations

import datetime as dt
import ipaddress
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import jinja2
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from workflows.config.cdns import load_cdns
from workflows.config.forms import FormDirectory, load_forms
from workflows.config.hotlines import load_hotlines
from workflows.config.placeholders import load_placeholders
from workflows.config.platforms import load_platforms
from workflows.config.policy import load_policy
from workflows.config.settings import Settings
from workflows.core.policy import Policy
from workflows.engine.broker import client_url
from workflows.engine.metrics import observe_fetch
from workflows.errors import ConfigError
from workflows.notify.mailbox import IMAPSettings, parse_imap_url
from workflows.notify.mailer import Relay, SMTPSettings, parse_smtp_url
from workflows.notify.notices import template_environment
from workflows.recheck.fetch import DEFAULT_USER_AGENT, Fetcher
from workflows.recheck.loop import FetchLoop
from workflows.store.db import engine_for, session_factory, utcnow
from workflows.trace.shared import SharedNetworks, SharedRateLimiter
from workflows.trace.tracer import Tracer

MAX_FETCH_BUDGET = 80.0  # seconds; the tasks' soft time limit is 100 s


@dataclass
class Runtime:
    """Settings, policy, database and the edges' clients of one process."""

    settings: Settings
    policy: Policy
    engine: Engine
    clock: Callable[[], dt.datetime] = utcnow
    rand: Callable[[], float] = random.random
    lease: float = 150.0  # seconds a claim lasts: longer than any task may run
    purge_due_at: dt.datetime | None = None  # the sweep's next retention purge; None: now
    inbox_due_at: dt.datetime | None = None  # the sweep's next mailbox read; None: now
    checks_held_since: dt.datetime | None = None  # re-checks held back for urgent work since
    checks_trickled_at: dt.datetime | None = None  # when held re-checks last trickled out
    # The broker's Redis, when the process has one (a worker): RDAP answers are shared
    # there with every other worker, behind the process's own cache.
    shared_redis_url: str | None = None
    _closers: list[Callable[[], None]] = field(default_factory=list)

    @classmethod
    def from_settings(cls, settings: Settings, policy: Policy | None = None) -> Runtime:
        """Build the runtime SETTINGS describe (the database must be migrated already)."""
        policy = policy or load_policy(settings.policy)  # a bad policy stops start-up first
        engine = engine_for(settings)
        return cls(settings, policy, engine, lease=settings.claim_lease)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        """Return the session factory."""
        return session_factory(self.engine)

    @cached_property
    def tracer(self) -> Tracer:
        """Return this process's tracer (its RDAP cache serves every task it runs)."""
        shared = None
        if self.shared_redis_url is not None:
            # A cache: short timeouts and no retries, so Redis trouble costs a trace a
            # second at most and the registry is asked instead.
            client = redis.Redis.from_url(
                client_url(self.shared_redis_url),
                socket_timeout=1.0,
                socket_connect_timeout=1.0,
                retry=Retry(NoBackoff(), 0),
            )
            self._closers.append(client.close)
            shared = SharedNetworks(client, self.settings.rdap_cache_ttl)
            tracer = Tracer.from_settings(
                self.settings, shared, lambda local: SharedRateLimiter(client, local)
            )
        else:
            tracer = Tracer.from_settings(self.settings)
        # A failed lookup is remembered no longer than the policy waits to trace again.
        tracer.rdap.failure_ttl = min(tracer.rdap.failure_ttl, self.policy.trace_retry_first)
        tracer.registrars.failure_ttl = min(
            tracer.registrars.failure_ttl, self.policy.trace_retry_first
        )
        self._closers.append(tracer.close)
        return tracer

    @cached_property
    def fetcher(self) -> Fetcher:
        """Return this process's re-check fetcher (through the first proxy, if any)."""
        proxies = self.settings.fetch_proxies
        return self._fetcher(proxies[0] if proxies else None)

    @cached_property
    def fetchers(self) -> tuple[Fetcher, ...]:
        """Return one fetcher per vantage (TAKEDOWN_FETCH_PROXY); re-checks rotate among them."""
        proxies = self.settings.fetch_proxies
        if len(proxies) <= 1:
            return (self.fetcher,)
        return (self.fetcher, *(self._fetcher(proxy) for proxy in proxies[1:]))

    def _fetcher(self, proxy: str | None) -> Fetcher:
        """Build a fetcher through PROXY (None: direct); it holds no connection between
        fetches, so there is nothing to close with the runtime."""
        allow = [ipaddress.ip_network(cidr) for cidr in self.settings.fetch_allow]
        return Fetcher(
            self.tracer.resolver,
            allow=allow,
            proxy=proxy,
            deadline=self.settings.fetch_deadline,
            max_bytes=self.settings.fetch_max_bytes,
            user_agent=self.settings.fetch_user_agent or DEFAULT_USER_AGENT,
        )

    @cached_property
    def fetch_loop(self) -> FetchLoop:
        """Return the event loop that runs this process's re-checks, bounded per host and
        overall (TAKEDOWN_FETCH_PER_HOST, TAKEDOWN_FETCH_PARALLEL)."""
        loop = FetchLoop(
            self.settings.fetch_per_host, self.settings.fetch_parallel, observe=observe_fetch
        )
        self._closers.append(loop.close)
        return loop

    @cached_property
    def fetch_budget(self) -> float:
        """Return the seconds one task may spend re-checking: past the fetch deadline, inside
        the claim where it can be, and always inside the task's soft time limit."""
        return min(MAX_FETCH_BUDGET, max(self.settings.fetch_deadline + 2, self.lease / 2))

    @cached_property
    def smtp(self) -> SMTPSettings:
        """Return the validated SMTP settings."""
        return parse_smtp_url(self.settings.smtp_url, password=self.settings.smtp_password)

    @cached_property
    def relay(self) -> Relay:
        """Return this process's mail relay, its connections kept open between notices."""
        relay = Relay(self.smtp)
        self._closers.append(relay.close)
        return relay

    @cached_property
    def imap(self) -> IMAPSettings | None:
        """Return the validated mailbox settings; None when no mailbox is configured."""
        if self.settings.imap_url is None:
            return None
        return parse_imap_url(self.settings.imap_url, self.settings.imap_password)

    @cached_property
    def forms(self) -> FormDirectory:
        """Return the web-form desks (TAKEDOWN_FORMS)."""
        return load_forms(self.settings.forms)

    @cached_property
    def templates(self) -> jinja2.Environment:
        """Return the notice template environment."""
        return template_environment(self.settings.templates)

    def close(self) -> None:
        """Release connections."""
        for closer in self._closers:
            closer()
        self._closers.clear()
        self.engine.dispose()


def check_start(settings: Settings) -> Policy:
    """Refuse, before anything starts, what the worker could not run with; return the policy."""
    if settings.sender is None:
        raise ConfigError("TAKEDOWN_SENDER: required: the From address of every notice")
    parse_smtp_url(settings.smtp_url, password=settings.smtp_password)
    if settings.imap_url is not None:
        parse_imap_url(settings.imap_url, settings.imap_password)
    policy = load_policy(settings.policy)  # a bad policy stops start-up, naming its line
    load_hotlines(settings.hotlines)  # so do the directories, loaded again by the tracer
    load_cdns(settings.cdns)
    load_forms(settings.forms)
    load_platforms(settings.platforms)
    load_placeholders(settings.placeholders)
    return policy
