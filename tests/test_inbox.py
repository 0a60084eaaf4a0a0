"""Mail that comes back, end to end: a notice sent through a real SMTP relay with its own
return path (VERP), then the bounce, the reply and the out-of-office a real MTA and a
real desk would send, taken by `take_message` and by the `takedown inbox` command.

The returned messages are the fixtures in tests/data/mail/ (Postfix, Exim, Exchange
formats) with the notice's real token, Message-ID, desk and case reference put in.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_harness import claim_first_notice, engine_runtime, hosta_stack, hosta_world
from sqlalchemy import select, update
from stack import DATA, Stack

from workflows.config.settings import load_settings
from workflows.engine.acting import act_cases
from workflows.engine.inbox import take_message
from workflows.engine.outbox import case_reference
from workflows.engine.runtime import Runtime
from workflows.engine.sending import send_notice
from workflows.engine.tracing import trace_cases
from workflows.kinds import CaseState, NoticeStatus
from workflows.notify.mailbox import parse_imap_url, read_mailbox
from workflows.sim.bounces import Answered, returned_mail
from workflows.sim.imapserver import DovecotServer
from workflows.store import accounts
from workflows.store.models import Case, DeadRecipient, InboundMessage, Notice, NoticeItem
from workflows.store.queries import compute_stats
from workflows.web.app import create_app

with warnings.catch_warnings():
    from starlette.exceptions import StarletteDeprecationWarning

    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

URL = "http://files.hosta.test/1"
DESK = "abuse@hosta.example"
UPSTREAM = "abuse@upstream.example"
RETURN_PATH = "bounces+{token}@hotline.example"
MAIL = DATA / "mail"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with hosta_stack(tmp_path, hosta_world(URL, upstream=UPSTREAM)) as up:
        up.env["TAKEDOWN_RETURN_PATH"] = RETURN_PATH
        yield up


@pytest.fixture
def rt(stack: Stack) -> Iterator[Runtime]:
    with engine_runtime(stack) as runtime:
        notice_id = claim_first_notice(stack, runtime, URL)
        assert send_notice(runtime, notice_id) == NoticeStatus.SENT
        yield runtime


def sent_notice(rt: Runtime) -> Notice:
    with rt.sessions() as session:
        return session.scalars(select(Notice)).one()


def returned(fixture: str, notice: Notice, case_id: int) -> bytes:
    """Return FIXTURE as it would come back for NOTICE (its token, Message-ID, desk, case)."""
    text = (MAIL / fixture).read_text(encoding="utf-8")
    for old, new in (
        ("0123456789abcdef0123", str(notice.return_token)),
        ("TD-000042", case_reference(case_id)),
    ):
        text = text.replace(old, new)
    text = re.sub(r"<takedown\.notice\.\d+\.[0-9a-f]+@hotline\.example>", notice.message_id, text)
    return re.sub(r"(?i)abuse@host\d+\.example", DESK, text).encode()


def case_id_of(stack: Stack) -> int:
    return stack.case(URL).id


def kinds(stack: Stack) -> list[str]:
    return [str(e.kind) for e in stack.events(case_id_of(stack))]


def test_each_notice_leaves_with_its_own_unguessable_return_path(stack: Stack, rt: Runtime) -> None:
    notice = sent_notice(rt)
    (received,) = stack.smtp.snapshot()
    assert notice.return_token and len(notice.return_token) == 20
    assert received.sender == f"bounces+{notice.return_token}@hotline.example"
    assert notice.return_token not in received.message.as_string()  # only the envelope


def test_a_bounce_fails_the_notice_marks_the_desk_dead_and_moves_the_case_on_once(
    stack: Stack, rt: Runtime
) -> None:
    notice, case_id = sent_notice(rt), case_id_of(stack)
    bounce = returned("postfix-bounce.eml", notice, case_id)
    taken = take_message(rt, bounce, "file")
    assert (taken.kind, taken.new, taken.notice_id, taken.moved) == (
        "bounce",
        True,
        notice.id,
        [case_id],
    )
    assert sent_notice(rt).status == NoticeStatus.FAILED
    case = stack.case(URL)
    assert (case.state, case.steps_done, case.due_at) == (CaseState.ACTIVE, 2, rt.clock())
    assert case.routed_at is not None and case.routed_at >= case.opened_at  # a fact, kept
    with rt.sessions() as session:
        dead = session.get(DeadRecipient, DESK)
        assert dead is not None and dead.notice_id == notice.id and "5.1.1" in dead.reason
    assert kinds(stack).count("bounced") == 1
    assert kinds(stack).count("escalated_after_refusal") == 1
    # The same bounce again (the pipe and the mailbox, or a crash): nothing moves twice.
    again = take_message(rt, bounce, "imap")
    assert (again.new, again.moved) == (False, [])
    assert kinds(stack).count("escalated_after_refusal") == 1
    act_cases(rt, [case_id])  # the escalation to the upstream is owed now
    with rt.sessions() as session:
        owed = session.execute(select(NoticeItem.step, NoticeItem.recipients)).all()
        assert session.scalars(select(InboundMessage.kind)).all() == ["bounce"]
    assert sorted(owed) == [(0, DESK), (2, UPSTREAM)]


def test_a_dead_desk_is_left_out_of_other_cases_until_its_time_is_up(
    stack: Stack, rt: Runtime
) -> None:
    notice = sent_notice(rt)
    take_message(rt, returned("postfix-bounce.eml", notice, case_id_of(stack)), "file")
    other = stack.report("http://files.hosta.test/2")[0]["id"]
    stack.world.put_content("http://files.hosta.test/2")
    trace_cases(rt, [other])
    act_cases(rt, [other])
    events = [(str(e.kind), e.detail) for e in stack.events(other)]
    skipped = [d for k, d in events if k == "step_skipped"]
    assert skipped and skipped[0]["reason"] == "bounced lately" and skipped[0]["step"] == 0
    with rt.sessions() as session:
        owed = session.scalars(select(NoticeItem).where(NoticeItem.case_id == other)).all()
    assert owed == []  # nothing owed to the dead desk


def test_a_delay_is_recorded_and_moves_nothing(stack: Stack, rt: Runtime) -> None:
    notice, case_id = sent_notice(rt), case_id_of(stack)
    taken = take_message(rt, returned("postfix-delay.eml", notice, case_id), "file")
    assert (taken.kind, taken.moved) == ("delay", [])
    assert sent_notice(rt).status == NoticeStatus.SENT
    assert "delivery_delayed" in kinds(stack) and stack.case(URL).steps_done == 1


def test_a_reply_is_recorded_with_its_text_and_rechecks_the_case_at_once(
    stack: Stack, rt: Runtime
) -> None:
    notice, case_id = sent_notice(rt), case_id_of(stack)
    taken = take_message(rt, returned("reply.eml", notice, case_id), "file")
    assert (taken.kind, taken.cases) == ("reply", [case_id])
    events = {str(e.kind): e.detail for e in stack.events(case_id)}
    assert "removed" in events["reply"]["text"] and events["reply"]["notice"] == notice.id
    assert events["recheck_requested"]["reason"].startswith("reply from ")
    case = stack.case(URL)
    assert case.check_due_at == rt.clock() and case.due_at == rt.clock()


def test_an_out_of_office_is_recorded_and_is_no_reply(stack: Stack, rt: Runtime) -> None:
    notice, case_id = sent_notice(rt), case_id_of(stack)
    taken = take_message(rt, returned("out-of-office.eml", notice, case_id), "file")
    assert taken.kind == "auto_reply"
    assert "auto_reply" in kinds(stack)
    assert "reply" not in kinds(stack) and "recheck_requested" not in kinds(stack)


def test_mail_that_matches_nothing_is_kept_for_an_analyst(stack: Stack, rt: Runtime) -> None:
    taken = take_message(rt, (MAIL / "other.eml").read_bytes(), "file")
    assert (taken.kind, taken.cases) == ("other", [])
    with rt.sessions() as session:
        row = session.scalars(select(InboundMessage)).one()
    assert row.kind == "other" and row.text


def test_the_inbox_command_takes_a_file_or_stdin_and_refuses_a_missing_source(
    stack: Stack, rt: Runtime, tmp_path: Path
) -> None:
    notice, case_id = sent_notice(rt), case_id_of(stack)
    bounce = tmp_path / "bounce.eml"
    bounce.write_bytes(returned("exchange-bounce.eml", notice, case_id))
    done = stack.takedown("inbox", "--json", str(bounce))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["kind"] == "bounce"
    assert json.loads(done.stdout)["moved"] == [case_id]
    again = stack.takedown("inbox", "-", stdin=bounce.read_text())
    assert again.returncode == 0 and "taken before" in again.stdout
    assert kinds(stack).count("escalated_after_refusal") == 1
    missing = stack.takedown("inbox", str(tmp_path / "nothing.eml"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "no such file" in missing.stderr
    nowhere = stack.takedown("inbox")
    assert nowhere.returncode == 2 and "TAKEDOWN_IMAP_URL" in nowhere.stderr
    stack.env["TAKEDOWN_IMAP_URL"] = "imap://hotline@mail.example/INBOX"  # plain, not local
    stack.env["TAKEDOWN_IMAP_PASSWORD"] = "secret"
    plain = stack.takedown("inbox")
    assert plain.returncode == 2 and plain.stderr.count("\n") == 1
    assert "TAKEDOWN_IMAP_URL" in plain.stderr
    del stack.env["TAKEDOWN_IMAP_URL"]
    hostile = stack.takedown("inbox", "-", stdin="\x00\xff" * 1000)
    assert hostile.returncode == 0 and hostile.stdout.startswith(("unreadable", "other"))


def test_with_a_real_worker_a_later_bounce_moves_the_case_to_the_upstream_exactly_once(
    tmp_path: Path, dovecot: DovecotServer
) -> None:
    # Chaser and escalation far off: only the bounce can bring the escalation within a minute.
    policy = tmp_path / "policy.toml"
    shipped = (DATA / "test-policy.toml").read_text(encoding="utf-8")
    policy.write_text(
        'inbox_every = "1s"\n'
        + shipped.replace(
            'after = "5s", send = "chaser"', 'after = "300s", send = "chaser"'
        ).replace('after = "10s", send = "escalation"', 'after = "600s", send = "escalation"'),
        encoding="utf-8",
    )
    with hosta_stack(tmp_path / "home", hosta_world(URL, upstream=UPSTREAM)) as live:
        live.env["TAKEDOWN_RETURN_PATH"] = RETURN_PATH
        live.env["TAKEDOWN_POLICY"] = str(policy)
        live.env["TAKEDOWN_IMAP_URL"] = dovecot.url  # the worker reads it every second
        live.env["TAKEDOWN_IMAP_PASSWORD"] = dovecot.password
        case_id = live.report(URL)[0]["id"]
        live.start_worker()
        live.wait_for(lambda: live.smtp.messages_to(DESK), 60, "the notice to the desk")
        with live.session() as session:
            notice = session.scalars(select(Notice)).one()
        bounce = returned("postfix-bounce.eml", notice, case_id).decode()
        dovecot.deliver(bounce.encode())  # the relay's bounce arrives in the mailbox
        live.wait_for(lambda: live.smtp.messages_to(UPSTREAM), 60, "the escalation")
        # Once more through a pipe: other bytes (the mailbox stored it with CRLF), so a new
        # message, but its notice failed already: nothing moves again.
        done = live.takedown("inbox", "-", stdin=bounce)
        assert done.returncode == 0 and "moved on" not in done.stdout, done.stderr
        escalation = live.smtp.messages_to(UPSTREAM)[0]
        assert escalation.sender.startswith("bounces+")  # its own return path as well
        live.wait_for(
            lambda: live.case(URL).steps_done == 3, 30, "the escalation's step to be done"
        )
        kinds_seen = [str(e.kind) for e in live.events(case_id)]
        assert kinds_seen.count("bounced") == 1
        assert kinds_seen.count("escalated_after_refusal") == 1
        assert len(live.smtp.messages_to(DESK)) == 1  # no chaser to the dead desk
        assert len(live.smtp.messages_to(UPSTREAM)) == 1


@pytest.fixture
def dovecot() -> Iterator[DovecotServer]:
    # Dovecot's own user must reach the mail folder: not under pytest's private tmp_path.
    folder = Path(tempfile.mkdtemp(prefix="takedown-imap-", dir="/tmp"))
    try:
        with DovecotServer(folder) as server:
            yield server
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_mailbox_is_read_once_each_message_marked_only_after_it_was_taken(
    stack: Stack, rt: Runtime, dovecot: DovecotServer
) -> None:
    notice, case_id = sent_notice(rt), case_id_of(stack)
    for fixture in ("reply.eml", "postfix-bounce.eml", "other.eml"):
        dovecot.deliver(returned(fixture, notice, case_id))
    settings = parse_imap_url(dovecot.url, dovecot.password)
    seen: list[str] = []

    def crash_on_the_second(uid: str, raw: bytes) -> None:
        if seen:
            raise RuntimeError("the worker died here")
        seen.append(uid)
        take_message(rt, raw, "imap", uid)

    with pytest.raises(RuntimeError):
        read_mailbox(settings, crash_on_the_second)  # the reply is taken and marked
    stack.env["TAKEDOWN_IMAP_URL"] = dovecot.url
    stack.env["TAKEDOWN_IMAP_PASSWORD"] = dovecot.password
    done = stack.takedown("inbox")  # the command reads the rest: the bounce, the other
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("bounce: ") and "2 new message(s)" in done.stdout
    again = stack.takedown("inbox")
    assert again.returncode == 0 and "0 new message(s)" in again.stdout
    with rt.sessions() as session:
        rows = session.execute(select(InboundMessage.kind, InboundMessage.mailbox_uid)).all()
    assert sorted(kind for kind, _ in rows) == ["bounce", "other", "reply"]
    assert all(uid and uid.endswith((":1", ":2", ":3")) for _, uid in rows)
    assert kinds(stack).count("reply") == 1 and kinds(stack).count("bounced") == 1
    stack.env["TAKEDOWN_IMAP_PASSWORD"] = "not-the-password"
    refused = stack.takedown("inbox")
    assert refused.returncode == 1 and "cannot read" in refused.stderr


def test_a_dead_address_is_left_out_beside_a_live_one_in_one_step_due_event(
    stack: Stack, rt: Runtime
) -> None:
    take_message(rt, returned("postfix-bounce.eml", sent_notice(rt), case_id_of(stack)), "file")
    other = stack.report("http://files.hosta.test/3")[0]["id"]
    stack.world.put_content("http://files.hosta.test/3")
    trace_cases(rt, [other])
    with rt.sessions() as session, session.begin():  # a desk with a second, live address
        session.execute(
            update(Case).where(Case.id == other).values(recipients=f"{DESK},second@hosta.example")
        )
    act_cases(rt, [other])
    with rt.sessions() as session:
        owed = session.scalars(select(NoticeItem.recipients).where(NoticeItem.case_id == other))
        assert list(owed) == ["second@hosta.example"]
    due = [e.detail for e in stack.events(other) if str(e.kind) == "step_due"]
    assert len(due) == 1 and due[0]["left_out"] == [DESK]
    assert due[0]["recipients"] == "second@hosta.example"


def test_with_a_real_worker_a_reply_rechecks_at_once_and_an_out_of_office_changes_nothing(
    tmp_path: Path, dovecot: DovecotServer
) -> None:
    # Re-checks five minutes apart: only the reply can bring one within the test.
    policy = tmp_path / "policy.toml"
    shipped = (DATA / "test-policy.toml").read_text(encoding="utf-8")
    policy.write_text(
        'inbox_every = "1s"\n' + shipped.replace('recheck_every = "1s"', 'recheck_every = "300s"'),
        encoding="utf-8",
    )
    with hosta_stack(tmp_path / "home", hosta_world(URL)) as live:
        live.env["TAKEDOWN_RETURN_PATH"] = RETURN_PATH
        live.env["TAKEDOWN_POLICY"] = str(policy)
        live.env["TAKEDOWN_IMAP_URL"] = dovecot.url
        live.env["TAKEDOWN_IMAP_PASSWORD"] = dovecot.password
        case_id = live.report(URL)[0]["id"]
        live.start_worker()
        live.wait_for(lambda: live.smtp.messages_to(DESK), 60, "the notice to the desk")
        (received,) = live.smtp.messages_to(DESK)
        checks = live.case(URL).checks_made

        def answer(kind: str, serial: int) -> bytes:
            when = dt.datetime.now(dt.UTC)
            return returned_mail(kind, Answered(received, DESK, when, serial)).as_bytes()

        def seen(kind: str) -> bool:
            return kind in kinds(live)

        dovecot.deliver(answer("auto_reply", 1))  # the desk's out-of-office
        live.wait_for(lambda: seen("auto_reply"), 60, "the out-of-office to be read")
        assert live.case(URL).checks_made == checks and not seen("recheck_requested")
        dovecot.deliver(answer("reply", 2))  # "Removed, thanks"
        live.wait_for(lambda: seen("reply"), 60, "the reply to be read")
        live.wait_for(lambda: live.case(URL).checks_made > checks, 30, "the re-check it asks")
        replies = [e.detail for e in live.events(case_id) if e.kind == "reply"]
        assert len(replies) == 1 and replies[0]["from"] == DESK
        assert kinds(live).count("auto_reply") == 1


def test_mail_that_matched_nothing_waits_for_an_analyst_on_the_desk_and_the_api(
    stack: Stack, rt: Runtime
) -> None:
    notice, case_id = sent_notice(rt), case_id_of(stack)
    take_message(rt, returned("other.eml", notice, case_id), "file")
    take_message(rt, returned("postfix-bounce.eml", notice, case_id), "file")
    with _client(stack, rt) as (client, auth):
        other = client.get("/api/inbox?kind=other", headers=auth)
        assert other.status_code == 200 and other.headers["x-total-count"] == "1"
        (kept,) = other.json()
        assert kept["kind"] == "other" and kept["text"] and kept["sender"]
        every = client.get("/api/inbox", headers=auth).json()
        assert [m["kind"] for m in every] == ["bounce", "other"]  # newest first
        assert client.get("/api/inbox?kind=nonsense", headers=auth).status_code == 422
        assert client.get("/api/inbox").status_code == 401
        (dead,) = client.get("/api/dead-recipients", headers=auth).json()
        assert dead["address"] == DESK and dead["notice"] == notice.id
        page = client.get("/mail", headers=auth)
        assert page.status_code == 200 and kept["subject"] in page.text and DESK in page.text


@contextlib.contextmanager
def _client(stack: Stack, rt: Runtime) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """Yield the desk app on the stack's database, and an analyst's Authorization header."""
    app = create_app(load_settings(stack.env), clock=rt.clock)
    with TestClient(app) as client, rt.sessions() as session:
        user = accounts.create_user(session, "al", "analyst", None, now=rt.clock())
        token = accounts.issue_token(session, user, now=rt.clock())
        session.commit()
        yield client, {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("status", [NoticeStatus.SENDING, NoticeStatus.UNCERTAIN])
def test_a_bounce_that_beats_the_record_of_sending_or_finds_it_uncertain_still_moves_on(
    stack: Stack, rt: Runtime, status: str
) -> None:
    notice, case_id = sent_notice(rt), case_id_of(stack)
    with rt.sessions() as session:  # as if the relay's acceptance were not recorded yet
        session.execute(update(Notice).values(status=status, sent_at=None))
        session.commit()
    taken = take_message(rt, returned("postfix-bounce.eml", notice, case_id), "file")
    assert (taken.kind, taken.moved) == ("bounce", [case_id])
    assert sent_notice(rt).status == NoticeStatus.FAILED
    assert kinds(stack).count("escalated_after_refusal") == 1


def test_the_league_table_shows_the_bounced_desk_as_unreachable(stack: Stack, rt: Runtime) -> None:
    notice, case_id = sent_notice(rt), case_id_of(stack)
    take_message(rt, returned("postfix-bounce.eml", notice, case_id), "file")
    with rt.sessions() as session:
        (row,) = compute_stats(session, since=None, now=rt.clock()).slowest
    assert row.bounced == 1 and row.online == 1
