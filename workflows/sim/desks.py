"""Abuse desks that react to the notices they receive: the demo's actors.

A Desk reads the URLs of a message (the "url" of each XARF application/json attachment,
else every http(s) URL in the text/plain parts) and plans its reaction; a DeskRunner
watches an SMTPServer, hands each new message to the desks it was addressed to and runs
their reactions when due by its clock. Behaviours:

prompt        on the first notice for a URL, after `delay`, the URL serves `removal`:
              404, 410 or 451, "changed" (other content of the same kind: a
              placeholder), "soft404" (status 200 with the host's "page not found"
              page) or "nxdomain" (the host name is deleted from DNS)
after_chaser  the same, but only for a chaser (a message with In-Reply-To)
reupload      like prompt, and `reupload_after` seconds after the removal the same
              content comes back re-encoded (World.reupload: a picture is scaled and
              recompressed); the next notice for the URL removes it again, for good
never         ignores everything
bounce        its address refuses mail with 550 (set on the SMTPServer at start)
hotline       a partner hotline: on a referral, after `delay`, the content is removed
hop           on the first notice, after `delay`, the URL's host resolves to `hop_to`:
              the content moved to another network and is still served there
late_bounce   the relay accepted every message; `delay` seconds after each one a bounce
              in `bounce_format` ("postfix", "exim" or "exchange") reaches the mailbox;
              the content stays online
delayed       after `delay`, a delay report (Action: delayed, 4.4.7) reaches the mailbox;
              then nothing: the content stays online
out_of_office after `delay`, an automatic reply to each message; the content stays online
replies       like prompt, and with the removal a person's "Removed, thanks" to each message

What comes back (workflows.sim.bounces writes it, as real MTAs and people do) goes to the
DeskRunner's `mailbox`, a callable taking the raw bytes: Dovecot's deliver in the tests,
the engine's inbox in the demo; with none, it is only logged.
"""

from __future__ import annotations

import datetime as dt
import heapq
import ipaddress
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import urlsplit

from workflows.sim.bounces import FORMATS, Answered, returned_mail
from workflows.sim.smtp import Received, SMTPServer
from workflows.sim.world import Record, World, site_key

# What a desk sends back to each message, by behaviour: a kind of workflows.sim.bounces.
ANSWERS = {"late_bounce": "bounce", "delayed": "delay", "out_of_office": "auto_reply",
           "replies": "reply"}  # fmt: skip
# The log's word for each answer delivered to the mailbox.
ANSWERED = {"bounce": "bounced", "delay": "delay-reported", "auto_reply": "auto-replied",
            "reply": "replied"}  # fmt: skip
BEHAVIOURS = frozenset(
    {"prompt", "after_chaser", "never", "bounce", "hotline", "hop", "reupload", *ANSWERS}
)
REMOVALS = frozenset({"404", "410", "451", "changed", "soft404", "nxdomain"})
URL_IN_TEXT = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
TRAILING_PUNCTUATION = ".,;:!?)]}>'\""
LogEntry = tuple[float, str, str, str]
# When, in which order, which desk, what, about which URL; and the message it answers.
Due = tuple[float, int, int, str, str, Received | None]


@dataclass
class Desk:
    """One abuse desk (or partner hotline) with a behaviour and a reaction delay."""

    address: str
    behaviour: str
    world: World
    delay: float = 0.0
    removal: str = "404"
    hop_to: list[str] = field(default_factory=list)
    reupload_after: float = 2.0
    bounce_format: str = "postfix"
    _handled: set[str] = field(default_factory=set, init=False, repr=False)
    _reuploaded: set[str] = field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        """Validate the declaration so a typo fails at construction, not mid-demo."""
        if self.behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown desk behaviour {self.behaviour!r}")
        if self.removal not in REMOVALS:
            raise ValueError(f"removal must be one of {sorted(REMOVALS)}, not {self.removal!r}")
        if self.behaviour == "hop" and not self.hop_to:
            raise ValueError("a hop desk needs hop_to addresses")
        if self.behaviour == "reupload" and self.removal == "nxdomain":
            raise ValueError("a reupload desk puts content back: its removal cannot be nxdomain")
        if self.reupload_after < 0:
            raise ValueError(f"negative reupload_after {self.reupload_after}")
        if self.bounce_format not in FORMATS:
            raise ValueError(f"bounce_format must be one of {FORMATS}, not {self.bounce_format!r}")
        self.hop_records()  # a bad address fails here, not when the desk acts
        self.address = self.address.lower()

    def hop_records(self) -> list[Record]:
        """Return the A and AAAA records the host gets when the content hops."""
        return [("A" if ipaddress.ip_address(a).version == 4 else "AAAA", a) for a in self.hop_to]

    def plan(self, message: EmailMessage, urls: list[str]) -> list[tuple[str, str]]:
        """Return the (action, url) reactions a message calls for; each URL acts once."""
        if self.behaviour in ("never", "bounce", "late_bounce", "delayed", "out_of_office"):
            return []
        if self.behaviour == "after_chaser" and message.get("In-Reply-To") is None:
            return []
        fresh = [url for url in urls if url not in self._handled]
        self._handled.update(fresh)
        action = "hopped" if self.behaviour == "hop" else "removed"
        return [(action, url) for url in fresh]

    def answer(self) -> str | None:
        """Return the kind of message this desk sends back to every message, if any."""
        return ANSWERS.get(self.behaviour)

    def act(self, action: str, url: str) -> str:
        """Carry out one planned reaction; return what happened."""
        if action == "hopped":
            host = urlsplit(url).hostname or ""
            self.world.set_records(host, self.hop_records())
            return "hopped"
        if self.world.content(url) is None:
            return "unknown-url"  # nothing is served there: nothing to take down
        if action == "reuploaded":
            self.world.reupload(url)
            self._reuploaded.add(url)
            self._handled.discard(url)  # the next notice gets it removed again
            return "reuploaded"
        if self.removal == "nxdomain":
            self.world.remove(urlsplit(url).hostname or "")
            return "removed"
        self.world.set_content_state(url, self.removal)
        return "removed"

    def follow_up(self, outcome: str, url: str) -> tuple[float, str] | None:
        """Return (after, action): what a reaction's outcome leads to later, if anything.

        A reupload desk puts a URL back reupload_after seconds after its first removal.
        """
        if self.behaviour == "reupload" and outcome == "removed" and url not in self._reuploaded:
            return self.reupload_after, "reuploaded"
        return None


def urls_in(message: EmailMessage) -> list[str]:
    """Return the URLs a message reports, XARF attachments first, in key form, once each."""
    found = _xarf_urls(message) or _text_urls(message)
    keys: list[str] = []
    for url in found:
        try:
            key = site_key(url)
        except ValueError:
            continue  # an unparseable port: not a URL any desk could act on
        if key not in keys:
            keys.append(key)
    return keys


def _xarf_urls(message: EmailMessage) -> list[str]:
    """Return the top-level "url" of every application/json part."""
    urls: list[str] = []
    for part in message.walk():
        if part.get_content_type() != "application/json":
            continue
        payload = part.get_payload(decode=True)
        try:
            data = json.loads(payload if isinstance(payload, bytes) else b"")
        except ValueError:
            continue  # not JSON after all; the text part may still name the URL
        if isinstance(data, dict) and isinstance(data.get("url"), str):
            urls.append(data["url"])
    return urls


def _text_urls(message: EmailMessage) -> list[str]:
    """Return every http(s) URL in the text/plain parts, line by line."""
    urls: list[str] = []
    for part in message.walk():
        if part.get_content_type() != "text/plain" or part.is_attachment():
            continue
        for line in str(part.get_content()).splitlines():
            urls += [m.rstrip(TRAILING_PUNCTUATION) for m in URL_IN_TEXT.findall(line)]
    return urls


class DeskRunner:
    """Watch an SMTPServer in a background thread and run the desks' reactions when due."""

    def __init__(
        self,
        world: World,
        smtp_server: SMTPServer,
        desks: list[Desk],
        clock: Callable[[], float] = time.monotonic,
        tick: float = 0.01,
        mailbox: Callable[[bytes], None] | None = None,
        wall_clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        """Prepare desks to react to smtp_server's messages by clock, checking every tick.

        mailbox receives every message the desks send back (raw bytes); wall_clock dates them.
        """
        self.world = world
        self.smtp = smtp_server
        self.desks = desks
        self.clock = clock
        self.tick = tick
        self.mailbox = mailbox
        self.wall_clock = wall_clock
        self.log: list[LogEntry] = []
        self._log_lock = threading.Lock()
        self._due: list[Due] = []
        self._order = itertools.count()  # ties run in the order they were planned
        self._serial = itertools.count(1)  # numbers the messages sent back
        self._seen = 0
        self._poll_lock = threading.Lock()  # poll() may also be called by a test driving a clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> DeskRunner:
        """Make bounce desks refuse mail and start watching."""
        for desk in self.desks:
            if desk.behaviour == "bounce":
                self.smtp.set_fault(desk.address, "550")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="desk-runner", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching; reactions not yet due never happen. Safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def __enter__(self) -> DeskRunner:
        """Start on entering the with-block."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Stop on leaving the with-block."""
        self.stop()

    def entries(self, action: str | None = None) -> list[LogEntry]:
        """Return a snapshot of the log, only one action's entries when given."""
        with self._log_lock:
            return [e for e in self.log if action is None or e[2] == action]

    def poll(self) -> None:
        """Hand new messages to their desks, then run every reaction now due."""
        with self._poll_lock:
            fresh = self.smtp.snapshot()[self._seen :]
            self._seen += len(fresh)
            for received in fresh:
                self._dispatch(received)
            while self._due and self._due[0][0] <= self.clock():
                _, _, index, action, url, answering = heapq.heappop(self._due)
                desk = self.desks[index]
                if answering is not None:
                    self._send_back(desk, action, answering)
                    continue
                outcome = desk.act(action, url)
                self._record(desk.address, outcome, url)
                later = desk.follow_up(outcome, url)
                if later is not None:  # due after the reaction, by the clock it ran at
                    after, then = later
                    self._plan(self.clock() + after, index, then, url)

    def submit_form(self, address: str, subject: str, text: str) -> None:
        """Hand the text an analyst submitted through a provider's web form to the desk at
        ADDRESS, as the provider's form backend would: it reacts as to a notice."""
        message = EmailMessage()
        message["Subject"], message["To"] = subject, address
        message.set_content(text)
        received = Received("web-form", [address], message, message.as_bytes())
        with self._poll_lock:
            self._dispatch(received)

    def _run(self) -> None:
        """Poll until stopped, waking at once when a message arrives."""
        while not self._stop.is_set():
            self.smtp.wait_for(lambda messages: len(messages) > self._seen, self.tick)
            self.poll()

    def _dispatch(self, received: Received) -> None:
        """Log a message's URLs for each addressed desk and schedule its reactions."""
        urls = urls_in(received.message)
        recipients = {r.lower() for r in received.recipients}
        now = self.clock()
        for index, desk in enumerate(self.desks):
            if desk.address not in recipients:
                continue
            for url in urls:
                self._record(desk.address, "received", url)
            for action, url in desk.plan(received.message, urls):
                self._plan(now + desk.delay, index, action, url)
            answer = desk.answer()
            if answer is not None:  # after the removals due at the same time
                self._plan(now + desk.delay, index, answer, "", received)

    def _plan(
        self, at: float, index: int, action: str, url: str, received: Received | None = None
    ) -> None:
        """Schedule desk INDEX's ACTION on URL (or its answer to RECEIVED) at AT."""
        heapq.heappush(self._due, (at, next(self._order), index, action, url, received))

    def _send_back(self, desk: Desk, kind: str, received: Received) -> None:
        """Write desk's answer of KIND to RECEIVED, hand it to the mailbox, log it per URL."""
        answered = Answered(received, desk.address, self.wall_clock(), next(self._serial))
        raw = returned_mail(kind, answered, desk.bounce_format).as_bytes()
        outcome = ANSWERED[kind]
        if self.mailbox is not None:
            try:
                self.mailbox(raw)
            except Exception:  # noqa: BLE001
                # Whatever the mailbox raises (Dovecot gone, the engine's database busy),
                # the desks go on: the answer is logged as lost, as a relay that gave up.
                outcome = "undelivered"
        for url in urls_in(received.message) or [""]:
            self._record(desk.address, outcome, url)

    def _record(self, address: str, action: str, url: str) -> None:
        """Append one entry to the log."""
        with self._log_lock:
            self.log.append((self.clock(), address, action, url))


def wait_until(condition: Callable[[], bool], timeout: float = 5.0, every: float = 0.01) -> bool:
    """Poll condition until it holds; False if it still does not after timeout."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(every)
    return True
