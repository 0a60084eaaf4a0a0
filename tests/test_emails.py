"""One address rule: the sender, the hotline and CDN files, RDAP contacts and the notices."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from workflows.config.cdns import load_cdns
from workflows.config.hotlines import load_hotlines
from workflows.config.settings import load_settings
from workflows.core.emails import email_problem, is_plain_address
from workflows.errors import ConfigError
from workflows.notify.notices import (
    NoticeItem,
    NoticeRequest,
    build_message,
    render_notice,
    template_environment,
)
from workflows.notify.xarf import xarf_reports
from workflows.trace.contacts import extract_contacts, vcard_emails
from workflows.trace.rdap import parse_network

GOOD = [
    pytest.param("abuse@cloudflare.com", id="plain"),
    pytest.param("a.b+tag@sub.example.co.uk", id="dots-plus-subdomains"),
    pytest.param("Abuse@Host.Example", id="capitals"),
    pytest.param("o'neil_x-y@example.org", id="atext-specials"),
    pytest.param("x@xn--80ak6aa92e.com", id="idn-domain-in-idna-form"),
    pytest.param("n1@hotline.test", id="rfc6761-test-domain"),
    pytest.param(f"{'a' * 64}@example.net", id="local-part-64"),
]

BAD = [
    pytest.param("a@b@example.net", 'exactly one "@"', id="two-at-signs"),
    pytest.param("a@b.org,c@d.org", 'exactly one "@"', id="two-recipients"),
    pytest.param("abuse.example.net", 'exactly one "@"', id="no-at"),
    pytest.param("", 'exactly one "@"', id="empty"),
    pytest.param("a@b.org\r\nBcc: c@d.org", "line breaks", id="crlf-injection"),
    pytest.param("a@b.org\nBcc: c@d.org", "line breaks", id="lf-injection"),
    pytest.param("a@b.org\r", "line breaks", id="trailing-cr"),
    pytest.param("a@b.org\x00", "control characters", id="nul"),
    pytest.param("a\u200b@b.org", "control characters", id="zero-width-space"),
    pytest.param("a b@example.net", "must not contain spaces", id="space-in-local"),
    pytest.param(" a@example.net", "must not contain spaces", id="leading-space"),
    pytest.param("a@exa mple.net", "must not contain spaces", id="space-in-domain"),
    pytest.param("a@", 'domain with a dot after the "@"', id="missing-domain"),
    pytest.param("abuse@localhost", 'domain with a dot after the "@"', id="domain-without-dot"),
    pytest.param("@example.org", 'needs a name before the "@"', id="missing-local"),
    pytest.param("a,b@example.net", 'characters not allowed before the "@"', id="comma"),
    pytest.param("<a@example.net>", 'characters not allowed before the "@"', id="brackets"),
    pytest.param('"a"@example.net', 'characters not allowed before the "@"', id="quoted"),
    pytest.param("ü@example.net", 'characters not allowed before the "@"', id="non-ascii-local"),
    pytest.param("a..b@example.net", "two periods", id="double-dot-local"),
    pytest.param("a@b..org", "two periods", id="double-dot-domain"),
    pytest.param("a@-b.org", "hyphen", id="hyphen-label"),
    pytest.param("a@b_c.example", "invalid characters", id="underscore-domain"),
    pytest.param("a@[192.0.2.1]", "bracketed IP address", id="domain-literal"),
    pytest.param("a@b.example.", "period", id="trailing-dot"),
    pytest.param("a@mail.local", "special-use", id="special-use-domain"),
    pytest.param(f"{'a' * 65}@example.net", "too long", id="local-part-65"),
    pytest.param(f"a@{'b' * 250}.org", "longer than 254", id="too-long"),
    pytest.param(
        "abuse@bücher.example",
        '"abuse@xn--bcher-kva.example"',
        id="idn-domain-unicode-gives-idna-form",
    ),
    pytest.param("abuse@пример.рф", "IDNA form", id="idn-domain-cyrillic"),
]

# One from each way an address goes wrong, for the checks across every surface below.
REFUSED_EVERYWHERE = [
    pytest.param("a@b@example.net", id="two-at-signs"),
    pytest.param("a@b.example\r\nBcc: x@y.example", id="crlf-injection"),
    pytest.param("a@", id="missing-domain"),
    pytest.param("a b@example.net", id="space"),
    pytest.param("abuse@bücher.example", id="idn-unicode-domain"),
    pytest.param("a,b@example.net", id="comma"),
]


@pytest.mark.parametrize("address", GOOD)
def test_plain_addresses_are_accepted(address: str) -> None:
    assert email_problem(address) is None
    assert is_plain_address(address)


@pytest.mark.parametrize(("address", "problem"), BAD)
def test_bad_addresses_are_refused_naming_the_problem(address: str, problem: str) -> None:
    found = email_problem(address)
    assert found is not None and problem in found, found
    assert "\n" not in found and "\r" not in found
    assert not is_plain_address(address)


def test_no_dns_is_imported_for_the_syntax_check() -> None:
    code = (
        "import sys; from workflows.core.emails import email_problem; "
        "assert email_problem('abuse@example.net') is None; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dns', 'socket')))"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert shown.strip() == "[]"


# --- the same rule on every surface ---------------------------------------------------


def hotline_file(directory: Path, address: str) -> Path:
    path = directory / "hotlines.toml"
    text = f'[hotline.GB]\nname = "IWF"\nemail = {json.dumps(address)}\n'
    path.write_text(text, encoding="utf-8")
    return path


def cdn_file(directory: Path, address: str) -> Path:
    path = directory / "cdns.toml"
    text = f'[cdn.example]\nname = "Example"\nasns = [64500]\nabuse = [{json.dumps(address)}]\n'
    path.write_text(text, encoding="utf-8")
    return path


def rdap_network(address: str) -> dict[str, Any]:
    card = ["vcard", [["version", {}, "text", "4.0"], ["email", {}, "text", address]]]
    return {
        "objectClassName": "ip network",
        "handle": "NET-1",
        "startAddress": "192.0.2.0",
        "endAddress": "192.0.2.255",
        "ipVersion": "v4",
        "entities": [{"handle": "ABUSE-1", "roles": ["abuse"], "vcardArray": card}],
    }


def notice(**changes: Any) -> NoticeRequest:
    when = datetime(2025, 1, 20, 10, 30, tzinfo=UTC)
    item = NoticeItem(
        case_id=1,
        reference="TD-000001",
        url="http://files.example/a.jpg",
        host="files.example",
        addresses=("192.0.2.10",),
        category="csam",
        reported_at=when,
        first_notified_at=None,
        content_sha256="ab" * 32,
    )
    base = NoticeRequest(
        kind="notice",
        recipients=("abuse@host.example",),
        language="en",
        items=(item,),
        sender="notices@hotline.example",
        sender_name="Example Hotline",
        notice_ref="N-000001",
        message_id="<takedown.notice.1.x@hotline.example>",
        in_reply_to=None,
        references=(),
        sent_at=when,
        network="EXAMPLE-NET",
        country="GB",
    )
    return replace(base, **changes)


def build(request: NoticeRequest) -> None:
    build_message(request, render_notice(request, template_environment()), xarf_reports(request))


@pytest.mark.parametrize("address", GOOD)
def test_a_good_address_is_accepted_everywhere(tmp_path: Path, address: str) -> None:
    assert load_settings({"TAKEDOWN_SENDER": address}).sender == address
    assert load_hotlines(hotline_file(tmp_path, address)).get("GB") is not None
    assert [c.abuse for c in load_cdns(cdn_file(tmp_path, address))] == [(address,)]
    assert vcard_emails(["vcard", [["email", {}, "text", address]]]) == [address.lower()]
    assert parse_network(rdap_network(address), "u").abuse == (address.lower(),)
    build(notice(recipients=(address,), sender=address))


@pytest.mark.parametrize("address", REFUSED_EVERYWHERE)
def test_a_bad_address_is_refused_or_dropped_everywhere(tmp_path: Path, address: str) -> None:
    problem = email_problem(address)
    assert problem is not None
    with pytest.raises(ConfigError, match="TAKEDOWN_SENDER") as caught:
        load_settings({"TAKEDOWN_SENDER": address})
    assert problem in str(caught.value)
    with pytest.raises(ConfigError, match=r"hotlines\.toml:3: \[hotline\.GB\]: email"):
        load_hotlines(hotline_file(tmp_path, address))
    with pytest.raises(ConfigError, match=r"cdns\.toml:4: \[cdn\.example\]: abuse"):
        load_cdns(cdn_file(tmp_path, address))
    assert extract_contacts(rdap_network(address)) == ([], [])
    assert parse_network(rdap_network(address), "u").abuse == ()
    with pytest.raises(ValueError, match="recipient"):
        build(notice(recipients=("abuse@host.example", address)))
    with pytest.raises(ValueError, match="reporter_contact"):
        build(notice(sender=address))
