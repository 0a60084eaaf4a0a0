"""Web-form desks: the TAKEDOWN_FORMS file (each problem named by its line), matching a
party to its form, and the workflow: a step to a form desk becomes a task on the desk, no
mail goes out, the next step waits for it, and an analyst's "submitted" (API and page)
lets the workflow go on as after a sent notice, once.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_harness import engine_runtime, hosta_stack, hosta_world
from sqlalchemy import select
from stack import Stack

from workflows.config.forms import FormDirectory, is_form_address, load_forms, parse_forms
from workflows.config.settings import load_settings
from workflows.config.tomlfile import Source, parse_toml
from workflows.engine.acting import act_cases
from workflows.engine.outbox import batch_notices
from workflows.engine.runtime import Runtime
from workflows.engine.tracing import trace_cases
from workflows.errors import ConfigError
from workflows.kinds import NoticeStatus
from workflows.store import accounts
from workflows.store.models import Notice, NoticeItem
from workflows.web.app import create_app

with warnings.catch_warnings():
    from starlette.exceptions import StarletteDeprecationWarning

    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

URL = "http://files.hosta.test/1"
FORM = "https://hosta.example/report-abuse"
FORMS = f"""
[form.hosta]
name = "Host A"
match = {{ asns = [205012] }}
url = "{FORM}"
note = "Choose the category: child sexual abuse."
"""


def parsed(text: str) -> FormDirectory:
    path = Path("forms.toml")
    return parse_forms(Source(path, text), parse_toml(path, text))


def test_the_shipped_forms_load_and_each_has_an_https_form() -> None:
    forms = load_forms()
    assert len(forms) >= 2
    assert all(form.url.startswith("https://") and form.note for form in forms)
    cloudflare = forms.match([13335], "cdn-fronted.test", [])
    assert cloudflare is not None and cloudflare.url == "https://abuse.cloudflare.com/"


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ('[form.a]\nname = "A"\nurl = "https://a.test/"\n', 1, "match is required"),
        ('[form.a]\nname = "A"\nmatch = { asns = [1] }\nurl = "http://a.test/"\n', 4, "https"),
        ('[form.a]\nname = "A"\nmatch = { asns = [0] }\nurl = "https://a.test/"\n', 3, "AS number"),
        ('[form.a]\nname = "A"\nmatch = { }\nurl = "https://a.test/"\n', 3, "at least one"),
        ('[form.a]\nname = "A"\nmatch = { domains = ["x"] }\nurl = "https://a.test/"\n', 3, "host"),
        ('[form.a]\nname = "A"\nmatch = { abuse = ["no"] }\nurl = "https://a.test/"\n', 3, "abuse"),
        ('[form.a]\nname = "A"\nmatch = { asn = [1] }\nurl = "https://a.test/"\n', 3, "unknown"),
        ('[form.a]\nname = "A"\nmatch = { asns = [1] }\nurl = "https://a.test/"\nx = 1\n', 5, "x"),
        ('[form.A]\nname = "A"\nmatch = { asns = [1] }\nurl = "https://a.test/"\n', 1, "lowercase"),
        (
            '[form.a]\nname = "A"\nmatch = { asns = [1] }\nurl = "https://a.test/"\n'
            '[form.b]\nname = "B"\nmatch = { asns = [2] }\nurl = "https://a.test/"\n',
            8,
            "[form.a]",
        ),
    ],
)
def test_a_bad_forms_file_names_its_line(text: str, line: int, words: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parsed(text)
    assert f"forms.toml:{line}:" in raised.value.message and words in raised.value.message


def test_a_party_matches_by_asn_host_name_or_abuse_address_first_table_first() -> None:
    forms = parsed(
        '[form.a]\nname = "A"\nmatch = { asns = [64500], domains = ["files.test"] }\n'
        'url = "https://a.test/"\n'
        '[form.b]\nname = "B"\nmatch = { abuse = ["Abuse@B.test"], asns = [64500] }\n'
        'url = "https://b.test/"\n'
    )
    assert forms.match([None, 64500], "x.test", []).key == "a"  # type: ignore[union-attr]
    assert forms.match([], "dl.files.test", []).key == "a"  # type: ignore[union-attr]
    assert forms.match([], "files.test.evil", []) is None  # a suffix, not a substring
    assert forms.match([], "x.test", ["abuse@b.TEST"]).key == "b"  # type: ignore[union-attr]
    assert forms.match([1], "x.test", ["abuse@c.test"]) is None
    assert forms.by_url("https://b.test/").name == "B"  # type: ignore[union-attr]
    assert is_form_address("https://b.test/") and not is_form_address("abuse@b.test")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    forms = tmp_path / "forms.toml"
    forms.write_text(FORMS)
    with hosta_stack(tmp_path, hosta_world(URL, upstream="abuse@upstream.example")) as up:
        up.env["TAKEDOWN_FORMS"] = str(forms)
        yield up


@pytest.fixture
def rt(stack: Stack) -> Iterator[Runtime]:
    with engine_runtime(stack) as runtime:
        yield runtime


def form_task(stack: Stack, rt: Runtime) -> tuple[int, int]:
    """Report URL, trace it, owe and build its first step: return (case, notice) ids."""
    case_id = stack.report(URL)[0]["id"]
    trace_cases(rt, [case_id])
    act_cases(rt, [case_id])
    rt.clock.advance(rt.policy.notice_window)  # type: ignore[attr-defined]
    (notice_id,) = batch_notices(rt)
    return case_id, notice_id


def test_a_step_to_a_form_desk_is_a_task_that_holds_the_workflow_and_sends_no_mail(
    stack: Stack, rt: Runtime
) -> None:
    case_id, notice_id = form_task(stack, rt)
    with rt.sessions() as session:
        notice = session.get_one(Notice, notice_id)
        assert (notice.status, notice.recipients, notice.due_at) == (NoticeStatus.FORM, FORM, None)
        assert URL in notice.body_text  # the prefilled text is the notice's own
    task = [e for e in stack.events(case_id) if e.kind == "form_task"]
    assert [e.detail["name"] for e in task] == ["Host A"]
    # Past the chaser's time: the chaser waits for the form, and nothing is ever mailed.
    rt.clock.advance(30)  # type: ignore[attr-defined]
    act_cases(rt, [case_id])
    assert batch_notices(rt) == []
    with rt.sessions() as session:
        steps = session.scalars(select(NoticeItem.step).where(NoticeItem.case_id == case_id))
        assert list(steps) == [0]
    assert stack.smtp.snapshot() == []


def test_marking_the_form_submitted_lets_the_workflow_go_on_once(stack: Stack, rt: Runtime) -> None:
    case_id, notice_id = form_task(stack, rt)
    app = create_app(load_settings(stack.env), clock=rt.clock)
    with TestClient(app) as client, rt.sessions() as session:
        user = accounts.create_user(session, "al", "analyst", None, now=rt.clock())
        token = accounts.issue_token(session, user, now=rt.clock())
        session.commit()
        auth = {"Authorization": f"Bearer {token}"}
        (listed,) = client.get("/api/forms", headers=auth).json()
        assert (listed["id"], listed["form"], listed["name"]) == (notice_id, FORM, "Host A")
        assert listed["urls"] == [URL] and URL in listed["text"] and listed["cases"] == [case_id]
        assert client.get("/api/forms").status_code == 401
        page = client.get("/forms", headers=auth)
        assert page.status_code == 200 and FORM in page.text
        assert f'href="{URL}"' not in page.text  # reported URLs are text, never links

        done = client.post(
            f"/api/notices/{notice_id}/submitted", json={"reference": "T-1"}, headers=auth
        )
        assert done.status_code == 200 and done.json()["status"] == "sent"
        again = client.post(f"/api/notices/{notice_id}/submitted", json={}, headers=auth)
        assert again.status_code == 409 and "not a web form" in again.json()["error"]
        bad = client.post("/api/notices/9999/submitted", json={}, headers=auth)
        assert bad.status_code == 404
        assert client.get("/api/forms", headers=auth).json() == []
    submitted = [e for e in stack.events(case_id) if e.kind == "form_submitted"]
    assert [(e.actor, e.detail["reference"]) for e in submitted] == [("al", "T-1")]
    case = stack.case(URL)
    assert case.first_notice_at is not None and case.due_at == rt.clock()
    # The chaser falls due its gap after the submission, and goes to the form again.
    rt.clock.advance(5)  # type: ignore[attr-defined]
    act_cases(rt, [case_id])
    rt.clock.advance(rt.policy.notice_window)  # type: ignore[attr-defined]
    (chaser,) = batch_notices(rt)
    with rt.sessions() as session:
        notice = session.get_one(Notice, chaser)
        assert (notice.kind, notice.status, notice.recipients) == ("chaser", "form", FORM)
