"""Reading inbound mail: real MTA formats in tests/data/mail, hostile input, and a fuzzer."""

from __future__ import annotations

import hashlib
import time
import typing
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflows.notify.inbound import (
    MAX_BYTES,
    MAX_DEPTH,
    MAX_IDS,
    MAX_LINE,
    MAX_PARTS,
    MAX_TEXT,
    Inbound,
    Kind,
    _report_blocks,
    read_message,
)

MAIL = Path(__file__).parent / "data" / "mail"
VERP = "bounces+{token}@hotline.example"
KINDS = set(typing.get_args(Kind))


def fixture(name: str) -> bytes:
    return (MAIL / name).read_bytes()


def read(raw: bytes | str) -> Inbound:
    """Read RAW (text is encoded as UTF-8, its lines ended with CRLF) with our VERP pattern."""
    if isinstance(raw, str):
        raw = raw.replace("\n", "\r\n").encode("utf-8")
    return read_message(raw, VERP)


@dataclass(frozen=True)
class Expected:
    kind: Kind
    sender: str
    tokens: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    case_refs: tuple[int, ...] = ()
    failures: tuple[tuple[str, str], ...] = ()  # (recipient, status)
    text: tuple[str, ...] = ()  # pieces the text must contain; none: it must be ""


NOTICE_7 = "<takedown.notice.7.0123456789abcdef@hotline.example>"
FIXTURES = [
    pytest.param(
        "postfix-bounce.eml",
        Expected(
            "bounce",
            "mailer-daemon@mail.hotline.example",
            tokens=("0123456789abcdef0123",),
            references=(NOTICE_7,),
            case_refs=(42,),
            failures=(("abuse@host3.example", "5.1.1"),),
        ),
        id="postfix-bounce",
    ),
    pytest.param(
        "postfix-delay.eml",
        Expected(
            "delay",
            "mailer-daemon@mail.hotline.example",
            tokens=("89abcdef0123456789ab",),
            references=("<takedown.notice.8.89abcdef01234567@hotline.example>",),
            case_refs=(51,),
            failures=(("abuse@host4.example", "4.4.1"),),
        ),
        id="postfix-delay",
    ),
    pytest.param(
        "exim-bounce.eml",
        Expected(
            "bounce",
            "mailer-daemon@mail.hotline.example",
            tokens=("fedcba9876543210fedc",),
            references=("<takedown.notice.9.fedcba9876543210@hotline.example>",),
            case_refs=(43,),  # only in the copy of the original quoted inline
            failures=(("abuse@host5.example", "5.1.1"),),
        ),
        id="exim-bounce",
    ),
    pytest.param(
        "exchange-bounce.eml",
        Expected(
            "bounce",
            "postmaster@host7.example",
            tokens=("aaaabbbbccccdddd0000",),
            references=("<takedown.notice.11.aaaabbbbccccdddd@hotline.example>",),
            case_refs=(42,),
            failures=(("abuse@host7.example", "5.4.1"),),
        ),
        id="exchange-bounce",
    ),
    pytest.param(
        "reply.eml",
        Expected(
            "reply",
            "abuse@host3.example",
            references=(NOTICE_7,),
            case_refs=(42,),
            text=("The content has been removed. Regards", "> Dear abuse team,"),
        ),
        id="reply",
    ),
    pytest.param(
        "out-of-office.eml",
        Expected(
            "auto_reply",
            "jane.roe@host8.example",
            tokens=("0f1e2d3c4b5a69788796",),
            references=("<takedown.notice.13.0f1e2d3c4b5a6978@hotline.example>",),
            case_refs=(42,),
            text=("I am out of the office until 4 January 2027",),
        ),
        id="out-of-office",
    ),
    pytest.param(
        "ticket-ack.eml",
        Expected(
            "auto_reply",
            "abuse@host9.example",
            references=("<takedown.notice.14.5555666677778888@hotline.example>",),
            case_refs=(42,),
            text=("assigned the ticket number 2026120710000123",),
        ),
        id="ticket-ack",
    ),
    pytest.param(
        "other.eml",
        Expected("other", "alex@example.org", text=("can I use your reporting form",)),
        id="other",
    ),
    pytest.param(
        "multipart-alternative-reply.eml",
        Expected(
            "reply",
            "abuse@host6.example",
            references=("<takedown.notice.12.1111222233334444@hotline.example>",),
            case_refs=(44,),
            text=("der Inhalt wurde entfernt", "Mit freundlichen Grüßen\nJürgen Müller"),
        ),
        id="multipart-alternative-iso-8859-1-reply",
    ),
]


@pytest.mark.parametrize(("name", "expected"), FIXTURES)
def test_fixture_is_read_as_its_kind(name: str, expected: Expected) -> None:
    found = read(fixture(name))
    assert found.kind == expected.kind
    assert found.problem is None
    assert found.sender == expected.sender
    assert found.tokens == expected.tokens
    assert found.references == expected.references
    assert found.case_refs == expected.case_refs
    assert [(f.recipient, f.status) for f in found.failures] == list(expected.failures)
    for piece in expected.text:
        assert piece in found.text
    if not expected.text:
        assert found.text == ""


def test_postfix_bounce_diagnostic_drops_its_smtp_type_and_unfolds() -> None:
    found = read(fixture("postfix-bounce.eml"))
    (failure,) = found.failures
    assert failure.diagnostic == (
        "550 5.1.1 <abuse@host3.example>: Recipient address rejected: User unknown"
    )
    assert found.subject == "Undelivered Mail Returned to Sender"
    assert found.message_id == "<20261207091503.4Xb2Kq1Zz3z9sWt@mail.hotline.example>"


def test_exchange_bounce_diagnostic_is_one_line_without_its_type() -> None:
    (failure,) = read(fixture("exchange-bounce.eml")).failures
    assert failure.diagnostic.startswith("550 5.4.1 Recipient address rejected: Access denied.")
    assert "AS(201806281) [AM0PR01MB1234" in failure.diagnostic
    assert "\n" not in failure.diagnostic and len(failure.diagnostic) <= MAX_LINE


def test_exim_bounce_diagnostic_comes_from_the_failed_address_paragraph() -> None:
    (failure,) = read(fixture("exim-bounce.eml")).failures
    assert failure.diagnostic.startswith("host mx.host5.example [192.0.2.5] SMTP error")
    assert failure.diagnostic.endswith("550 5.1.1 User unknown")


def test_exim_bounce_without_x_failed_recipients_is_still_found_in_the_text() -> None:
    raw = fixture("exim-bounce.eml").replace(b"X-Failed-Recipients: abuse@host5.example\n", b"")
    found = read(raw)
    assert found.kind == "bounce"
    assert [f.recipient for f in found.failures] == ["abuse@host5.example"]


def test_subject_of_an_exchange_bounce_is_unfolded_to_one_line() -> None:
    subject = read(fixture("exchange-bounce.eml")).subject
    assert subject == (
        "Undeliverable: Abuse report TD-000042: illegal content hosted at host7.example"
    )


def test_digest_is_the_sha256_of_the_raw_bytes() -> None:
    raw = fixture("reply.eml")
    assert read_message(raw).digest == hashlib.sha256(raw).hexdigest()
    assert read_message(bytes(raw)).digest == read_message(raw).digest
    assert read_message(raw + b"\n").digest != read_message(raw).digest
    assert read_message(b"\x00garbage").digest == hashlib.sha256(b"\x00garbage").hexdigest()


def test_tokens_are_empty_without_a_return_path_pattern() -> None:
    assert read_message(fixture("postfix-bounce.eml")).tokens == ()


@pytest.mark.parametrize("pattern", ["bounces@hotline.example", "b+{token}", "{token}@{token}.x"])
def test_return_path_pattern_without_one_token_in_the_local_part_is_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match="token"):
        read_message(fixture("reply.eml"), pattern)


TOKEN = "0123456789abcdef"  # 16 hex digits: the shortest token


@pytest.mark.parametrize(
    ("headers", "tokens"),
    [
        pytest.param(f"To: bounces+{TOKEN}@hotline.example", (TOKEN,), id="to"),
        pytest.param(f"Cc: x@y.example, <bounces+{TOKEN}@hotline.example>", (TOKEN,), id="cc"),
        pytest.param(f"To: BOUNCES+{TOKEN.upper()}@Hotline.Example", (TOKEN,), id="any-case"),
        pytest.param(f"To: bounces+{TOKEN[:-1]}@hotline.example", (), id="15-digits"),
        pytest.param(f"To: bounces+{'a' * 65}@hotline.example", (), id="65-digits"),
        pytest.param(f"To: bounces+{'a' * 64}@hotline.example", ("a" * 64,), id="64-digits"),
        pytest.param(f"To: bounces+{TOKEN}x@hotline.example", (), id="not-hex"),
        pytest.param(f"To: xbounces+{TOKEN}@hotline.example", (), id="other-prefix"),
        pytest.param(f"To: bounces+{TOKEN}@hotline.example.net", (), id="other-domain"),
        pytest.param(f"To: bounces-{TOKEN}@hotline.example", (), id="plus-is-literal"),
        pytest.param(
            f"To: bounces+{'b' * 16}@hotline.example\nDelivered-To: bounces+{TOKEN}@hotline.example"
            f"\nEnvelope-To: bounces+{'b' * 16}@hotline.example",
            (TOKEN, "b" * 16),
            id="delivered-to-first-then-deduplicated",
        ),
    ],
)
def test_tokens_are_found_by_the_verp_pattern(headers: str, tokens: tuple[str, ...]) -> None:
    found = read(f"From: a@x.example\n{headers}\nSubject: hi\n\nhello\n")
    assert found.tokens == tokens


def dsn(*blocks: str, original: str = "", subject: str = "Delivery Status Notification") -> str:
    """Build a delivery status notification with per-recipient BLOCKS and ORIGINAL headers."""
    recipients = "\n\n".join(blocks)
    returned = f"--B\nContent-Type: text/rfc822-headers\n\n{original}\n" if original else ""
    return (
        "From: MAILER-DAEMON@mail.hotline.example\nTo: bounces+x@hotline.example\n"
        f"Subject: {subject}\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
        "--B\nContent-Type: text/plain\n\nThe mail system\n\n"
        "--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mail.hotline.example\n\n"
        f"{recipients}\n\n{returned}--B--\n"
    )


def block(address: str, action: str, status: str = "", diagnostic: str = "") -> str:
    lines = [f"Final-Recipient: rfc822; {address}", f"Action: {action}"]
    lines += [f"Status: {status}"] if status else []
    lines += [f"Diagnostic-Code: smtp; {diagnostic}"] if diagnostic else []
    return "\n".join(lines)


def test_dsn_with_failed_and_delayed_recipients_is_a_bounce_of_the_failed_only() -> None:
    found = read(
        dsn(
            block("a@x.example", "delayed", "4.4.7"),
            block("B@Y.example", "failed", "5.2.2", "552 5.2.2 Mailbox full"),
            block("c@z.example", "delivered", "2.0.0"),
            block("d@z.example", "failed (bad mailbox)", "5.1.1"),
            block("b@y.example", "failed", "5.1.1"),  # the same address again: the first counts
        )
    )
    assert found.kind == "bounce"
    assert [(f.recipient, f.status, f.diagnostic) for f in found.failures] == [
        ("b@y.example", "5.2.2", "552 5.2.2 Mailbox full"),
        ("d@z.example", "5.1.1", ""),
    ]


def test_dsn_names_the_recipient_we_addressed_not_the_alias_it_reached() -> None:
    forwarded = "Original-Recipient: rfc822;Abuse@Host3.example\n" + block(
        "<noc-team@internal.host3.example>", "failed", "5.2.2"
    )
    (failure,) = read(dsn(forwarded)).failures
    assert failure.recipient == "abuse@host3.example"
    (failure,) = read(dsn(block("<noc@host3.example>", "failed", "5.2.2"))).failures
    assert failure.recipient == "noc@host3.example"


def test_delivery_status_given_as_text_is_read_too() -> None:
    # The parser always splits a delivery-status part into header blocks; a report built
    # in code may carry it as one string instead.
    report = EmailMessage()
    report["Content-Type"] = "message/delivery-status"
    report.set_payload("Reporting-MTA: dns; m.example\r\n\r\n" + block("a@x.example", "failed"))
    blocks = _report_blocks(report)
    assert blocks[1] == {"final-recipient": "rfc822; a@x.example", "action": "failed"}


def test_dsn_without_status_takes_the_code_from_the_diagnostic() -> None:
    found = read(dsn(block("a@x.example", "failed", "", "550 5.7.1 Message rejected as spam")))
    assert [(f.recipient, f.status) for f in found.failures] == [("a@x.example", "5.7.1")]


def test_dsn_that_reports_delivery_only_is_other() -> None:
    found = read(dsn(block("a@x.example", "delivered", "2.0.0"), block("b@x.example", "relayed")))
    assert (found.kind, found.failures) == ("other", ())
    assert found.text == "The mail system\n"


def test_dsn_token_and_case_found_only_in_the_returned_original() -> None:
    original = (
        f"Return-Path: <bounces+{TOKEN}@hotline.example>\nTo: abuse@x.example\n"
        "Message-ID: <takedown.notice.3.aa@hotline.example>\nSubject: Abuse report TD-1234567"
    )
    found = read(dsn(block("abuse@x.example", "failed", "5.1.1"), original=original))
    assert found.tokens == (TOKEN,)
    assert found.references == ("<takedown.notice.3.aa@hotline.example>",)
    assert found.case_refs == (1234567,)


def test_truncated_dsn_is_read_as_far_as_it_goes() -> None:
    raw = fixture("postfix-bounce.eml")
    after_status = read(raw[: raw.index(b"Remote-MTA:")])
    assert after_status.kind == "bounce"
    assert [(f.recipient, f.status) for f in after_status.failures] == [
        ("abuse@host3.example", "5.1.1")
    ]
    before_recipients = read(raw[: raw.index(b"Final-Recipient:")])
    assert before_recipients.kind == "unreadable"
    assert before_recipients.problem is not None and "recipient" in before_recipients.problem


def test_garbage_delivery_status_part_is_unreadable() -> None:
    raw = fixture("postfix-bounce.eml")
    start = raw.index(b"Reporting-MTA:")
    end = raw.index(b"--4Xb2Kq1Zz3z9sWt.1796634903/mail.hotline.example\nContent-Description: Und")
    found = read(raw[:start] + b"\x00\x01 garbage ::: \xff\xfe\n\nAction failed\n\n" + raw[end:])
    assert found.kind == "unreadable"
    assert found.problem == "a delivery status report without a recipient that can be read"


def test_bounce_text_quoted_in_an_ordinary_reply_is_not_a_bounce() -> None:
    # flufl.bounce would find a failed address in this text; the message is no bounce.
    found = read(
        "From: Someone <someone@x.example>\nSubject: Re: Abuse report TD-000042\n\n"
        "We got this, what does it mean?\n\n"
        "A message that you sent could not be delivered to one or more of its\n"
        "recipients. This is a permanent error. The following address(es) failed:\n\n"
        "  <abuse@host5.example>\n\n---\n"
    )
    assert (found.kind, found.failures, found.case_refs) == ("reply", (), (42,))


def test_bounce_looking_message_flufl_cannot_read_falls_through_to_other() -> None:
    found = read("From: MAILER-DAEMON@x.example\nSubject: Returned mail\n\nSomething failed.\n")
    assert (found.kind, found.failures) == ("other", ())


def test_bounce_looking_message_that_crashes_flufl_bounce_is_still_classified() -> None:
    # flufl.bounce's Yale detector raises IndexError for a From without any address.
    found = read("Return-Path: <>\nFrom: ,\nSubject: Automatic reply: TD-000042\n\nAway.\n")
    assert (found.kind, found.case_refs, found.sender) == ("auto_reply", (42,), None)


HUMAN = "From: a@x.example\nSubject: {subject}\n{headers}\n\nThanks.\n"


@pytest.mark.parametrize(
    ("subject", "headers", "kind"),
    [
        pytest.param(
            "Re: hello", "Auto-Submitted: auto-replied", "auto_reply", id="auto-submitted"
        ),
        pytest.param("Re: hello", "Auto-Submitted: auto-generated", "auto_reply", id="generated"),
        pytest.param("Re: TD-000042", "Auto-Submitted: no", "reply", id="auto-submitted-no"),
        pytest.param("hello", "X-Autoreply: yes", "auto_reply", id="x-autoreply"),
        pytest.param("hello", "X-Autorespond: yes", "auto_reply", id="x-autorespond"),
        pytest.param("hello", "X-Auto-Response-Suppress: All", "auto_reply", id="suppress"),
        pytest.param("hello", "Precedence: bulk", "auto_reply", id="precedence-bulk"),
        pytest.param("hello", "Precedence: junk", "auto_reply", id="precedence-junk"),
        pytest.param("hello", "Precedence: auto_reply", "auto_reply", id="precedence-auto"),
        pytest.param("hello", "Precedence: list", "other", id="precedence-list"),
        pytest.param("Auto: Abuse report", "", "auto_reply", id="subject-auto"),
        pytest.param("Out of Office: back Monday", "", "auto_reply", id="subject-ooo"),
        pytest.param("Abwesenheitsnotiz: TD-000042", "", "auto_reply", id="subject-de"),
        pytest.param("Réponse automatique : TD-000042", "", "auto_reply", id="subject-fr"),
        pytest.param("Re: Out of office", "", "other", id="ooo-not-at-start"),
        pytest.param(
            "[rt #12] Request received", "X-RT-Loop-Prevention: rt", "auto_reply", id="rt"
        ),
        pytest.param("Re: [rt #12] TD-000042", "X-RT-Loop-Prevention: rt", "reply", id="rt-agent"),
        pytest.param("Your ticket 77", "X-Zendesk-From-Account-Id: 1f", "auto_reply", id="zendesk"),
        pytest.param("Hello", "X-Freshdesk-API-Mail: 1", "other", id="freshdesk-no-ack"),
        pytest.param("Hello", "X-Autogenerated: Reply", "auto_reply", id="x-autogenerated"),
        pytest.param("Hello", "In-Reply-To: <n.1@hotline.example>", "reply", id="in-reply-to"),
        pytest.param("Hello", "References: bare.id@hotline.example", "reply", id="references"),
        pytest.param("Re: your mail td-000042", "", "reply", id="case-ref-in-subject"),
        pytest.param("Re: TD-00004", "", "other", id="case-ref-too-short"),
    ],
)
def test_auto_reply_and_reply_rules(subject: str, headers: str, kind: Kind) -> None:
    assert read(HUMAN.format(subject=subject, headers=headers)).kind == kind


def test_message_ids_are_normalized_and_at_most_fifty_kept() -> None:
    many = " ".join(f"<id{n}@x.example>" for n in range(MAX_IDS + 10))
    found = read(
        "From: a@x.example\nMessage-ID: own@x.example\nIn-Reply-To: bare@x.example\n"
        f"References: <id0@x.example>\n  {many}\nSubject: hi\n\nhello\n"
    )
    assert found.message_id == "<own@x.example>"
    assert found.references[:3] == ("<bare@x.example>", "<id0@x.example>", "<id1@x.example>")
    assert len(found.references) == MAX_IDS


def test_html_only_reply_is_turned_into_plain_text() -> None:
    found = read(
        "From: a@x.example\nSubject: Re: TD-000042\nContent-Type: text/html; charset=utf-8\n\n"
        "<html><head><style>p { color: red }</style><script>alert('x < y')</script></head>"
        "<body><p>Removed&nbsp;it &amp; warned   the\ncustomer.</p><div>Regards<br>Desk</div>"
        "</body></html>\n"
    )
    assert found.kind == "reply"
    assert found.text == "Removed it & warned the customer.\n\nRegards\nDesk"


def test_attachments_and_attached_messages_are_not_the_text() -> None:
    found = read(
        'From: a@x.example\nSubject: hi\nContent-Type: multipart/mixed; boundary="M"\n\n'
        "--M\nContent-Type: text/plain\nContent-Disposition: attachment; filename=a.txt\n\n"
        "attached file\n--M\nContent-Type: message/rfc822\n\nSubject: inner\n\ninner text\n"
        "--M\nContent-Type: text/html\n\n<p>the <b>real</b> text</p>\n--M--\n"
    )
    assert found.text == "the real text"


def test_text_is_cut_at_max_text_characters() -> None:
    found = read("From: a@x.example\nSubject: hi\n\n" + "word " * MAX_TEXT)
    assert len(found.text) == MAX_TEXT


# Hostile input


def nested(depth: int) -> bytes:
    """A message whose text part lies DEPTH multipart levels below the top."""
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (n, n)
        for n in range(depth)
    )
    closing = b"".join(b"\r\n--b%d--\r\n" % n for n in reversed(range(depth)))
    return b"From: a@x.example\r\nSubject: deep\r\n" + opening + b"\r\ndeep text" + closing


def flat(parts: int) -> bytes:
    """A multipart message with PARTS text parts."""
    body = b"".join(b"--p\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % n for n in range(parts))
    return (
        b"From: a@x.example\r\nContent-Type: multipart/mixed; boundary=p\r\n\r\n" + body + b"--p--"
    )


def test_message_over_max_bytes_is_unreadable_and_one_at_the_limit_is_read() -> None:
    head = b"From: a@x.example\r\nSubject: big\r\n\r\n"
    at_limit = head + b"x" * (MAX_BYTES - len(head))
    assert read(at_limit).kind == "other"
    found = read(at_limit + b"x")
    assert (found.kind, found.problem) == ("unreadable", f"larger than {MAX_BYTES} bytes")
    assert found.digest == hashlib.sha256(at_limit + b"x").hexdigest()


def test_nesting_deeper_than_max_depth_is_unreadable() -> None:
    assert read(nested(MAX_DEPTH)).text == "deep text"
    found = read(nested(MAX_DEPTH + 1))
    assert found.kind == "unreadable"
    assert found.problem == f"MIME parts nested more than {MAX_DEPTH} deep"


def test_nesting_a_thousand_levels_deep_is_unreadable_quickly() -> None:
    started = time.monotonic()
    found = read(nested(1000))
    assert found.kind == "unreadable" and found.problem
    assert time.monotonic() - started < 3


def test_more_than_max_parts_is_unreadable() -> None:
    assert read(flat(MAX_PARTS - 1)).kind == "other"  # the message and its parts: 500
    found = read(flat(MAX_PARTS))
    assert (found.kind, found.problem) == ("unreadable", f"more than {MAX_PARTS} MIME parts")


def test_ten_thousand_parts_are_refused_without_parsing_them_all() -> None:
    started = time.monotonic()
    assert read(flat(10_000)).kind == "unreadable"
    assert time.monotonic() - started < 1  # parsing all 10,000 takes about 3 s


def test_empty_or_headerless_input_is_unreadable() -> None:
    for raw in (b"", b"\r\n\r\njust a body", b"\x00\x01\x02\xff"):
        found = read(raw)
        assert (found.kind, found.problem) == ("unreadable", "no header fields: not a mail message")


def test_bad_base64_is_decoded_as_far_as_it_goes() -> None:
    found = read(
        "From: a@x.example\nSubject: hi\nContent-Transfer-Encoding: base64\n\n"
        "SGVsbG8gd29ybGQ=!!!*** not base64 at all\n"
    )
    assert found.kind == "other"
    assert found.text.startswith("Hello world")


@pytest.mark.parametrize("charset", ["x-made-up", "base64", "idna", "rot13", ""])
def test_unknown_or_unusable_charset_is_read_as_utf_8(charset: str) -> None:
    raw = (
        f"From: a@x.example\nSubject: =?{charset or 'x'}?q?Gr=C3=BC=C3=9Fe?=\n"
        f'Content-Type: text/plain; charset="{charset}"\n\nGrüße\n'
    )
    found = read(raw)
    assert found.kind == "other"
    assert found.text == "Grüße\n"


def test_nul_bytes_and_invalid_utf_8_in_headers_are_removed() -> None:
    found = read(
        b"From: Bad\x00Name <a@x.example>\r\nSubject: Hello\x00World \xff\xfe\x1b[31m\r\n"
        b"In-Reply-To: <n\x00@x.example>\r\n\r\nbody\x00 with\x07 controls\r\n"
    )
    assert found.sender == "a@x.example"
    assert found.subject.startswith("Hello World")
    assert found.subject.isprintable() and "\x1b" not in found.subject
    assert found.text == "body with controls\n"
    assert all(ref.isprintable() and " " not in ref for ref in found.references)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(
            b"Subject: =?utf-8?q?Hello=0D=0ABcc:_victim@example.net?=\r\n"
            b"From: =?utf-8?q?Eve=0D=0ABcc:_v@example.net?= <eve@x.example>\r\n",
            id="encoded-crlf",
        ),
        pytest.param(
            b"Subject: Hello\rBcc: victim@example.net\r\n"
            b"From: eve@x.example\rBcc: v@example.net\r\n",
            id="bare-cr",
        ),
        pytest.param(
            b"Subject: Hello\nBcc: victim@example.net\r\nFrom: eve@x.example\r\n", id="bare-lf"
        ),
    ],
)
def test_header_injection_never_reaches_subject_sender_or_text(headers: bytes) -> None:
    found = read(headers + b"\r\nline one\rline two\r\n")
    assert found.kind == "other"
    assert found.subject.startswith("Hello")
    assert found.sender == "eve@x.example"
    for value in (found.subject, found.sender):
        assert "\r" not in value and "\n" not in value
    assert "\r" not in found.text


def test_nested_comment_in_from_header_does_not_stop_the_reading() -> None:
    found = read(b"From: " + b"(" * 5000 + b"a@x.example\r\nSubject: s\r\n\r\nhi")
    assert (found.kind, found.subject, found.sender) == ("other", "s", None)


def test_long_subject_is_cut_to_one_line_of_max_line() -> None:
    found = read("From: a@x.example\nSubject: " + "long " * 1000 + "\n\nhi\n")
    assert len(found.subject) == MAX_LINE and found.subject.endswith("…")


def assert_well_formed(found: Inbound, raw: bytes) -> None:
    """Check what every answer must be, whatever the input."""
    assert found.kind in KINDS
    assert found.digest == hashlib.sha256(raw).hexdigest()
    assert (found.problem is not None) == (found.kind == "unreadable")
    assert found.subject.isprintable() and len(found.subject) <= MAX_LINE
    assert found.sender is None or (found.sender.isprintable() and " " not in found.sender)
    assert len(found.text) <= MAX_TEXT
    assert all(c.isprintable() or c in "\n\t" for c in found.text if ord(c) < 160)
    assert all(f.diagnostic.isprintable() for f in found.failures)


@settings(max_examples=200)
@given(raw=st.binary(max_size=5000))
def test_any_bytes_give_an_answer(raw: bytes) -> None:
    assert_well_formed(read_message(raw, VERP), raw)


HEADER_NAMES = [
    "From", "To", "Cc", "Subject", "Message-ID", "In-Reply-To", "References", "Return-Path",
    "Delivered-To", "Auto-Submitted", "Precedence", "X-Failed-Recipients", "Content-Type",
    "Content-Transfer-Encoding", "MIME-Version", "Final-Recipient", "Action", "Status",
]  # fmt: skip
CONTENT_TYPES = [
    'multipart/report; report-type=delivery-status; boundary="B"',
    'multipart/mixed; boundary="B"',
    "message/delivery-status",
    "message/rfc822",
    "text/html; charset=x-made-up",
]
PIECES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["<>", "=?utf-8?q?a=0D=0Ab?=", "MAILER-DAEMON@x.example", "(", "\r\n", "\n--B"]
    ),
    st.sampled_from(CONTENT_TYPES),
    st.just(f"bounces+{TOKEN}@hotline.example"),
)
LINES = st.lists(
    st.one_of(
        st.builds(lambda n, v: f"{n}: {v}", st.sampled_from(HEADER_NAMES), PIECES),
        st.sampled_from(["", "--B", "--B--", "Content-Type: message/delivery-status"]),
        st.text(max_size=40),
    ),
    max_size=30,
)


@settings(max_examples=200)
@given(
    first=st.sampled_from(["From: MAILER-DAEMON@x.example", "Return-Path: <>", "Subject: Re: x"]),
    lines=LINES,
    newline=st.sampled_from(["\n", "\r\n"]),
)
def test_header_like_text_gives_an_answer(first: str, lines: list[str], newline: str) -> None:
    raw = newline.join([first, *lines]).encode("utf-8", "surrogatepass")
    assert_well_formed(read_message(raw, VERP), raw)
