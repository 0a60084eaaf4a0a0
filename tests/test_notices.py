"""Notice rendering, message building and XARF reports: pure, templates read from disk."""

from __future__ import annotations

import email
import email.policy
import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import jinja2
import pytest

from workflows.errors import ConfigError
from workflows.notify.notices import (
    KINDS,
    NoticeItem,
    NoticeRequest,
    RenderedNotice,
    build_message,
    language_for_country,
    make_message_id,
    one_line,
    render_notice,
    shipped_templates,
    template_environment,
)
from workflows.notify.xarf import REPORT_NAMESPACE, xarf_report, xarf_reports

REPORTED = datetime(2025, 1, 20, 10, 30, tzinfo=UTC)
SENT = datetime(2025, 1, 21, 9, 0, tzinfo=UTC)
FIRST_ID = "<takedown.notice.17.9f3a@hotline.example>"
LANGUAGES = ("en", "de", "fr")
SALUTATIONS = {
    ("en", "referral"): "Dear colleagues,",
    ("de", "referral"): "Liebe Kolleginnen und Kollegen,",
    ("fr", "referral"): "Chères et chers collègues,",
    "en": "Dear abuse team,",
    "de": "Sehr geehrte Damen und Herren,",
    "fr": "Madame, Monsieur,",
}


def item(n: int = 42, **changes: Any) -> NoticeItem:
    base = NoticeItem(
        case_id=n,
        reference=f"TD-{n:06d}",
        url=f"http://files.example/gallery/{n}.jpg?id={n}&s=1",
        host="files.example",
        addresses=("185.199.108.10", "2001:db8:1::10"),
        category="csam",
        reported_at=REPORTED,
        first_notified_at=None,
        content_sha256="ab" * 32,
    )
    return replace(base, **changes)


def request(kind: str = "notice", language: str = "en", **changes: Any) -> NoticeRequest:
    base = NoticeRequest(
        kind=kind,
        recipients=("abuse@host.example", "noc@host.example"),
        language=language,
        items=(item(42), item(43), item(44)),
        sender="notices@hotline.example",
        sender_name="Example Hotline",
        notice_ref="N-000017",
        message_id=FIRST_ID,
        in_reply_to=None,
        references=(),
        sent_at=SENT,
        network="EXAMPLEHOST-NET AS205012 185.199.108.0/22",
        country="GB",
    )
    return replace(base, **changes)


def chaser() -> NoticeRequest:
    notified = REPORTED + timedelta(hours=1)
    return request(
        "chaser",
        items=(item(42, first_notified_at=notified), item(43, first_notified_at=notified)),
        notice_ref="N-000018",
        message_id="<takedown.notice.18.77aa@hotline.example>",
        in_reply_to=FIRST_ID,
        references=(FIRST_ID,),
    )


@pytest.fixture(scope="module")
def env() -> jinja2.Environment:
    return template_environment()


def build(req: NoticeRequest, env: jinja2.Environment) -> EmailMessage:
    return build_message(req, render_notice(req, env), xarf_reports(req))


# Language choice


@pytest.mark.parametrize(
    ("country", "language"),
    [
        pytest.param("DE", "de", id="germany"),
        pytest.param("AT", "de", id="austria"),
        pytest.param("LI", "de", id="liechtenstein"),
        pytest.param("CH", "de", id="switzerland-majority-german"),
        pytest.param("FR", "fr", id="france"),
        pytest.param("MC", "fr", id="monaco"),
        pytest.param("LU", "fr", id="luxembourg-administration-french"),
        pytest.param("RE", "fr", id="reunion-own-code"),
        pytest.param("BE", "en", id="belgium-mostly-dutch-speaking-hosting"),
        pytest.param("GB", "en", id="uk"),
        pytest.param("US", "en", id="us"),
        pytest.param("de", "de", id="lower-case"),
        pytest.param(None, "en", id="unknown"),
    ],
)
def test_language_for_country(country: str | None, language: str) -> None:
    assert language_for_country(country) == language


# Rendering


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", KINDS)
def test_render_every_kind_in_every_language(
    kind: str, language: str, env: jinja2.Environment
) -> None:
    req = request(kind, language) if kind != "chaser" else replace(chaser(), language=language)
    rendered = render_notice(req, env)

    assert rendered.subject.startswith(f"[{req.notice_ref}] ")
    assert "\n" not in rendered.subject and "\r" not in rendered.subject
    for notice_item in req.items:
        assert notice_item.reference in rendered.subject
        assert notice_item.url in rendered.text  # exact, so a desk can copy it
        assert notice_item.reference in rendered.text
        assert notice_item.url.replace("&", "&amp;") in rendered.html
    salutation = SALUTATIONS.get((language, kind), SALUTATIONS[language])
    assert rendered.text.startswith(salutation + "\n")
    assert salutation in rendered.html
    assert f'<html lang="{language}">' in rendered.html
    assert req.notice_ref in rendered.text
    assert "Example Hotline" in rendered.text
    assert "href" not in rendered.html.lower()
    assert "{{" not in rendered.text + rendered.html
    assert "\n\n\n" not in rendered.text


def test_render_subject_lists_three_references_and_counts_the_rest(
    env: jinja2.Environment,
) -> None:
    req = request(items=tuple(item(n) for n in range(40, 46)))
    assert render_notice(req, env).subject == (
        "[N-000017] Child sexual abuse material on your network: 6 URLs "
        "(TD-000040, TD-000041, TD-000042, +3 more)"
    )


def test_render_singular_subject(env: jinja2.Environment) -> None:
    req = request(items=(item(42),))
    assert render_notice(req, env).subject == (
        "[N-000017] Child sexual abuse material on your network: 1 URL (TD-000042)"
    )


def test_render_chaser_names_when_the_first_notice_went(env: jinja2.Environment) -> None:
    rendered = render_notice(chaser(), env)
    assert "On 2025-01-20T11:30:00Z we notified you" in rendered.text
    assert rendered.subject.startswith("[N-000018] Reminder:")


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", KINDS)
def test_render_escapes_html_in_every_value(
    kind: str, language: str, env: jinja2.Environment
) -> None:
    hostile = item(
        42,
        url="http://evil.example/<script>alert(1)</script>",
        category="<b>x</b>",
        reference="TD-<i>1</i>",
        first_notified_at=REPORTED,
    )
    req = request(
        kind,
        language,
        items=(hostile,),
        sender_name="<u>Hotline</u> & Co",
        network="<s>NET</s>",
        country="<em>GB</em>",
    )
    rendered = render_notice(req, env)

    for tag in ("<script>", "<b>", "<i>", "<u>", "<s>", "<em>"):
        assert tag not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html
    assert "&lt;b&gt;x&lt;/b&gt;" in rendered.html
    assert "&lt;u&gt;Hotline&lt;/u&gt; &amp; Co" in rendered.html
    assert "http://evil.example/<script>alert(1)</script>" in rendered.text
    assert re.search(r"<code[^>]*>http://evil\.example/&lt;script&gt;", rendered.html)


def test_render_never_puts_a_url_in_a_link(env: jinja2.Environment) -> None:
    rendered = render_notice(request(), env)
    for notice_item in request().items:
        escaped = re.escape(notice_item.url.replace("&", "&amp;"))
        assert re.search(rf"<code[^>]*>{escaped}</code>", rendered.html)
    assert "<a " not in rendered.html and "href" not in rendered.html


def test_render_collapses_a_subject_with_a_line_break(env: jinja2.Environment) -> None:
    rendered = render_notice(request(notice_ref="N-1\r\nBcc: victim@elsewhere.example"), env)
    assert rendered.subject.startswith("[N-1 Bcc: victim@elsewhere.example]")
    assert not set(rendered.subject) & {"\r", "\n"}


def test_render_falls_back_to_english_for_a_language_without_templates(
    env: jinja2.Environment,
) -> None:
    rendered = render_notice(request(language="nl"), env)
    assert rendered.text.startswith("Dear abuse team,")


def test_render_shows_no_hash_or_network_when_unknown(env: jinja2.Environment) -> None:
    req = request(items=(item(42, content_sha256=None, addresses=()),), network=None)
    rendered = render_notice(req, env)
    assert "SHA-256" not in rendered.text and "Network:" not in rendered.text
    assert "IP address" not in rendered.text


def test_render_without_category_says_illegal_content(env: jinja2.Environment) -> None:
    rendered = render_notice(request(items=(item(42, category=None),)), env)
    assert "Illegal content on your network" in rendered.subject


def test_operator_template_wins_over_the_shipped_one(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "notice.subject.txt").write_text("Takedown {{ notice_ref }}\n")
    rendered = render_notice(request(), template_environment(tmp_path))
    assert rendered.subject == "Takedown N-000017"
    assert rendered.text.startswith("Dear abuse team,")  # the rest is still shipped


def test_operator_language_falls_back_to_english_per_file(tmp_path: Path) -> None:
    (tmp_path / "nl").mkdir()
    (tmp_path / "nl" / "notice.subject.txt").write_text("[{{ notice_ref }}] Melding\n")
    rendered = render_notice(request(language="nl"), template_environment(tmp_path))
    assert rendered.subject == "[N-000017] Melding"
    assert rendered.text.startswith("Dear abuse team,")


def test_unknown_variable_in_a_template_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "notice.txt").write_text("Hello {{ recipient_name }}\n")
    with pytest.raises(ConfigError, match=r"en/notice\.txt.*recipient_name"):
        render_notice(request(), template_environment(tmp_path))


def test_template_syntax_error_is_a_config_error_naming_the_line(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "notice.html").write_text("<p>\n{% if %}</p>\n")
    with pytest.raises(ConfigError, match=r"en/notice\.html line 2"):
        render_notice(request(), template_environment(tmp_path))


def test_missing_template_is_a_config_error_naming_it() -> None:
    empty = jinja2.Environment(loader=jinja2.DictLoader({}), autoescape=True)
    with pytest.raises(ConfigError, match=r"de/notice\.subject\.txt not found"):
        render_notice(request(language="de"), empty)


def test_template_folder_that_does_not_exist_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TAKEDOWN_TEMPLATES"):
        template_environment(tmp_path / "missing")


def test_templates_cannot_reach_python_internals(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "notice.txt").write_text("{{ items.__class__.__mro__ }}\n")
    with pytest.raises(ConfigError, match=r"en/notice\.txt"):
        render_notice(request(), template_environment(tmp_path))


def test_shipped_templates_are_found_in_the_source_checkout() -> None:
    folder = shipped_templates()
    assert (folder / "en" / "notice.txt").is_file()
    assert folder == Path(__file__).resolve().parent.parent / "templates"


def test_shipped_templates_inside_an_installed_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "templates").mkdir()
    monkeypatch.setattr("importlib.resources.files", lambda package: tmp_path)
    assert shipped_templates() == tmp_path / "templates"


@pytest.mark.parametrize(
    "req",
    [
        pytest.param(request(kind="apology"), id="unknown-kind"),
        pytest.param(request(language="../x"), id="path-in-language"),
        pytest.param(request(items=()), id="no-urls"),
        pytest.param(request(sent_at=datetime(2025, 1, 21, 9, 0)), id="naive-time"),
    ],
)
def test_render_refuses_a_bad_request(req: NoticeRequest, env: jinja2.Environment) -> None:
    with pytest.raises(ValueError):
        render_notice(req, env)


def test_one_line_removes_every_kind_of_line_break() -> None:
    assert one_line("a\r\nb\u2028c\u0085d\x00e\u200bf\tg") == "a b c d e f g"


# Building the message


def test_build_message_headers(env: jinja2.Environment) -> None:
    message = build(request(), env)

    assert message["Message-ID"] == FIRST_ID
    assert message["From"] == "Example Hotline <notices@hotline.example>"
    assert message["To"] == "abuse@host.example, noc@host.example"
    assert message["Subject"].startswith("[N-000017] Child sexual abuse material")
    assert message["Date"] == "Tue, 21 Jan 2025 09:00:00 +0000"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Auto-Response-Suppress"] == "OOF, AutoReply"
    assert message["Precedence"] is None
    assert message["In-Reply-To"] is None and message["References"] is None


def test_build_message_threads_a_chaser_to_the_first_notice(env: jinja2.Environment) -> None:
    message = build(chaser(), env)
    assert message["Message-ID"] == "<takedown.notice.18.77aa@hotline.example>"
    assert message["In-Reply-To"] == FIRST_ID
    assert message["References"] == FIRST_ID


def test_build_message_ends_references_with_the_message_replied_to(
    env: jinja2.Environment,
) -> None:
    older = "<takedown.notice.16.aaaa@hotline.example>"
    message = build(replace(chaser(), references=(older,)), env)
    assert message["References"] == f"{older} {FIRST_ID}"


def test_build_message_parts(env: jinja2.Environment) -> None:
    req = request()
    message = build(req, env)

    assert message.get_content_type() == "multipart/mixed"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["multipart/alternative"] + [
        "application/json"
    ] * 3
    text, html = parts[0].iter_parts()
    assert text.get_content_type() == "text/plain" and text.get_content_charset() == "utf-8"
    assert html.get_content_type() == "text/html" and html.get_content_charset() == "utf-8"
    assert req.items[0].url in text.get_content()
    # The reports as a recipient reads them, off the wire.
    sent = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    attached = list(sent.iter_attachments())
    assert len(attached) == len(req.items)
    for notice_item, part in zip(req.items, attached, strict=True):
        assert part.get_filename() == f"xarf-{notice_item.reference}.json"
        assert part.get_content_type() == "application/json"
        report = json.loads(part.get_content())
        assert report["url"] == notice_item.url
        assert report["category"] == "content" and report["type"] == "csam"


def test_build_message_round_trips_through_bytes_in_german(env: jinja2.Environment) -> None:
    req = request(language="de", sender_name="Beschwerdestelle Köln")
    sent = build(req, env).as_bytes()
    assert max(sent) < 128  # 7-bit on the wire: no relay needs 8BITMIME or SMTPUTF8
    parsed = email.message_from_bytes(sent, policy=email.policy.default)

    assert parsed["Subject"].startswith("[N-000017] Darstellungen sexuellen Missbrauchs")
    assert parsed["From"].addresses[0].display_name == "Beschwerdestelle Köln"
    body = parsed.get_body(("plain",))
    assert body is not None and "Mit freundlichen Grüßen" in body.get_content()


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"recipients": ("abuse@host.example\r\nBcc: x@evil.example",)}, id="to"),
        pytest.param({"recipients": ("abuse@host.example, x@evil.example",)}, id="to-list"),
        pytest.param({"recipients": ()}, id="no-recipient"),
        pytest.param({"sender": "a@b.example\nBcc: x@evil.example"}, id="from"),
        pytest.param({"sender_name": "Hotline\r\nBcc: x@evil.example"}, id="from-name"),
        pytest.param({"message_id": "<a@b>\r\nBcc: x@evil.example"}, id="message-id"),
        pytest.param({"message_id": "not-an-id"}, id="message-id-shape"),
        pytest.param({"in_reply_to": "<a@b>\nBcc: x@evil.example"}, id="in-reply-to"),
        pytest.param({"references": ("<a@b> <c@d>\n",)}, id="references"),
    ],
)
def test_build_message_refuses_a_line_break_in_any_header(
    changes: dict[str, Any], env: jinja2.Environment
) -> None:
    req = replace(request(), **changes)
    rendered = render_notice(request(), env)
    with pytest.raises(ValueError):
        build_message(req, rendered, xarf_reports(request()))


def test_build_message_refuses_a_subject_with_a_line_break(env: jinja2.Environment) -> None:
    req = request()
    rendered = RenderedNotice("Notice\r\nBcc: x@evil.example", "text\n", "<p>html</p>\n")
    with pytest.raises(ValueError, match="subject"):
        build_message(req, rendered, xarf_reports(req))


def test_build_message_has_no_line_break_in_any_header_even_with_hostile_input(
    env: jinja2.Environment,
) -> None:
    req = request(
        notice_ref="N-1\r\nBcc: victim@evil.example",
        items=(item(42, reference="TD-1\nBcc: victim@evil.example", category="x\r\ny"),),
    )
    message = build(req, env)
    for part in message.walk():
        for name, value in part.items():
            assert not set(str(value)) & {"\r", "\n"}, name
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert parsed["Bcc"] is None
    assert [p.get_filename() for p in parsed.iter_attachments()] == [
        "xarf-TD-1_Bcc__victim_evil.example.json"
    ]


def test_build_message_needs_one_report_per_url(env: jinja2.Environment) -> None:
    req = request()
    with pytest.raises(ValueError, match="one XARF report per URL"):
        build_message(req, render_notice(req, env), xarf_reports(req)[:1])


def test_make_message_id() -> None:
    assert make_message_id(17, "hotline.example", "9f3a") == FIRST_ID
    assert make_message_id(1, "localhost", "x") == "<takedown.notice.1.x@localhost>"


@pytest.mark.parametrize(
    ("domain", "token"),
    [
        ("hotline.example", "a b"),
        ("hotline.example", "a>"),
        ("a@b.c", "x"),
        ("", "x"),
        ("hotline.example>", "x"),
    ],
)
def test_make_message_id_refuses_unsafe_parts(domain: str, token: str) -> None:
    with pytest.raises(ValueError):
        make_message_id(1, domain, token)


# XARF


def report(notice_item: NoticeItem | None = None, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "reporter_org": "Example Hotline",
        "reporter_contact": "notices@hotline.example",
        "message_id": FIRST_ID,
    }
    return xarf_report(notice_item or item(42), **(args | kw))


def test_xarf_report_fields() -> None:
    found = report(country="GB")
    contact = {
        "org": "Example Hotline",
        "contact": "notices@hotline.example",
        "domain": "hotline.example",
    }
    assert found["xarf_version"] == "4.0.0"
    assert found["timestamp"] == "2025-01-20T10:30:00Z"
    assert found["reporter"] == contact and found["sender"] == contact
    assert found["source_identifier"] == "185.199.108.10"
    assert (found["category"], found["type"]) == ("content", "csam")
    assert found["url"] == "http://files.example/gallery/42.jpg?id=42&s=1"
    assert found["domain"] == "files.example"
    assert found["detection_method"] == "manual_review"
    assert found["verification_method"] == "manual"
    assert found["hash_values"] == {"sha256": "ab" * 32}
    assert found["country_code"] == "GB"
    assert found["tags"] == ["case:td-000042", "category:csam"]
    assert "classification" not in found  # "csam" is not a legal classification code


def test_xarf_report_is_the_same_on_a_resend_and_differs_per_case() -> None:
    first, again, other = report(), report(), report(item(43))
    assert first == again
    assert first["report_id"] != other["report_id"]
    assert first["report_id"] != report(message_id="<other@hotline.example>")["report_id"]
    assert first["report_id"].count("-") == 4  # a UUID
    assert REPORT_NAMESPACE.version == 5


def test_xarf_report_carries_metadata_only() -> None:
    found = report()
    assert "evidence" not in found
    text = json.dumps(found)
    assert "payload" not in text and "screenshot" not in text


@pytest.mark.parametrize(
    ("category", "classification"),
    [("A1", "A1"), ("b2", "B2"), ("baseline", "baseline"), ("csam", None), (None, None)],
)
def test_xarf_classification_only_from_a_classification_code(
    category: str | None, classification: str | None
) -> None:
    assert report(item(42, category=category)).get("classification") == classification


def test_xarf_report_for_an_address_host_has_no_domain_and_no_unknown_hash() -> None:
    found = report(item(42, host="185.199.108.10", addresses=(), content_sha256=None))
    assert "domain" not in found and "hash_values" not in found
    assert found["source_identifier"] == "185.199.108.10"


def test_xarf_times_are_utc() -> None:
    later = datetime(2025, 1, 20, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    assert report(item(42, reported_at=later))["timestamp"] == "2025-01-20T10:30:00Z"


def test_xarf_refuses_a_reporter_contact_that_is_not_an_address() -> None:
    with pytest.raises(ValueError):
        report(reporter_contact="hotline")
