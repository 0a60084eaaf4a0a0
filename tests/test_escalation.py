"""The next party, end to end with a real worker: a web-form desk produces a task that
holds the workflow until an analyst marks it submitted, and then it goes on; a registrar
receives the escalation when the host and its upstream stay silent, once each.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from engine_harness import hosta_stack, hosta_world
from sqlalchemy import select
from stack import DATA, Stack

from workflows.config.forms import load_forms
from workflows.engine import notice_actions
from workflows.kinds import NoticeStatus
from workflows.store import accounts
from workflows.store.models import Notice

URL = "http://files.hosta.test/1"
DESK = "abuse@hosta.example"
UPSTREAM = "abuse@upstream.example"
FORM = "https://hosta.example/report-abuse"
WAIT = 90  # seconds: two cores shared with other test runs and a worker subprocess


def policy(tmp_path: Path, steps: str) -> Path:
    """Write the test policy with host_notice's steps replaced by STEPS."""
    shipped = (DATA / "test-policy.toml").read_text(encoding="utf-8")
    start = shipped.index("[workflow.host_notice]")
    end = shipped.index("[workflow.hotline_referral]")
    path = tmp_path / "policy.toml"
    path.write_text(
        shipped[:start] + f"[workflow.host_notice]\nsteps = [\n{steps}]\n\n" + shipped[end:],
        encoding="utf-8",
    )
    return path


def form_notices(live: Stack) -> list[Notice]:
    with live.session() as session:
        return list(session.scalars(select(Notice).order_by(Notice.id)))


def test_with_a_real_worker_a_form_task_holds_the_chaser_until_it_is_submitted(
    tmp_path: Path,
) -> None:
    forms = tmp_path / "forms.toml"
    forms.write_text(
        f'[form.hosta]\nname = "Host A"\nmatch = {{ asns = [205012] }}\nurl = "{FORM}"\n'
    )
    steps = '{ after = "0s", send = "notice" },\n{ after = "2s", send = "chaser" },\n'
    with hosta_stack(tmp_path / "home", hosta_world(URL)) as live:
        live.env["TAKEDOWN_FORMS"] = str(forms)
        live.env["TAKEDOWN_POLICY"] = str(policy(tmp_path, steps))
        case_id = live.report(URL)[0]["id"]
        live.start_worker()
        live.wait_for(lambda: len(form_notices(live)) == 1, WAIT, "the form task")
        (task,) = form_notices(live)
        assert (task.kind, task.status, task.recipients) == ("notice", NoticeStatus.FORM, FORM)
        # Well past the chaser's gap: it waits for the form, and nothing is mailed.
        live.wait_for(lambda: live.case(URL).checks_made >= 3, WAIT, "a few re-checks")
        assert len(form_notices(live)) == 1 and live.smtp.snapshot() == []
        with live.session() as session:
            analyst = accounts.create_user(session, "al", "analyst", None, now=_now())
            notice_actions.submit_form(
                session, task.id, analyst, now=_now(), reference="CF-1", forms=load_forms(forms)
            )
            session.commit()
        live.wait_for(lambda: len(form_notices(live)) == 2, WAIT, "the chaser's form task")
        chaser = form_notices(live)[1]
        assert (chaser.kind, chaser.status, chaser.recipients) == ("chaser", "form", FORM)
        submitted = form_notices(live)[0]
        assert submitted.status == NoticeStatus.SENT and submitted.sent_at is not None
        assert chaser.created_at >= submitted.sent_at + dt.timedelta(seconds=2)
        kinds = [str(e.kind) for e in live.events(case_id)]
        assert kinds.count("form_task") == 2 and kinds.count("form_submitted") == 1
        assert live.smtp.snapshot() == []


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


REGISTRAR = "abuse@registrar.example"


def test_with_a_real_worker_the_registrar_gets_the_escalation_when_host_and_upstream_are_silent(
    tmp_path: Path,
) -> None:
    world = hosta_world(URL, upstream=UPSTREAM)  # nobody acts: the content stays
    world.add_registrar(handle="1234", name="Example Registrar", iana_id=1234, abuse=[REGISTRAR])
    world.register_domain("hosta.test", "1234")
    steps = (
        '{ after = "0s", send = "notice" },\n'
        '{ after = "2s", send = "escalation", to = "upstream" },\n'
        '{ after = "4s", send = "escalation", to = "registrar" },\n'
    )
    with hosta_stack(tmp_path / "home", world) as live:
        live.env["TAKEDOWN_POLICY"] = str(policy(tmp_path, steps))
        case_id = live.report(URL, "http://files.hosta.test/2")[0]["id"]
        world.put_content("http://files.hosta.test/2")
        live.start_worker()
        live.wait_for(lambda: live.smtp.messages_to(REGISTRAR), WAIT, "the registrar's notice")
        live.wait_for(lambda: live.case(URL).steps_done == 3, WAIT, "the last step done")
        # One notice per party, listing both URLs; the registrar's threads to the first.
        for party in (DESK, UPSTREAM, REGISTRAR):
            (received,) = live.smtp.messages_to(party)
            assert "files.hosta.test/2" in received.message.as_string()
        (first,) = live.smtp.messages_to(DESK)
        escalation = live.smtp.messages_to(REGISTRAR)[0].message
        assert escalation["In-Reply-To"] == first.message["Message-ID"]
        due = [e.detail for e in live.events(case_id) if e.kind == "step_due"]
        assert [(d["to"], d["recipients"]) for d in due] == [
            ("host", DESK),
            ("upstream", UPSTREAM),
            ("registrar", REGISTRAR),
        ]
        # Both cases' registrar lookups cost one RDAP domain query.
        assert live.sim.rdap.requests.count("/domain/hosta.test") == 1
