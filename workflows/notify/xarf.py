"""Describe one reported URL as an XARF v4 report (category `content`, type `csam`).

XARF v4 (github.com/xarf/xarf-spec, `schemas/v4/xarf-core.json` and
`types/content-csam.json`) is JSON an abuse desk can process without reading the notice.
A report carries metadata only: where the content is and how it was assessed, never the
content, a description of it or a link to a copy.

Where takedown deviates from the schema, and why:

- `report_id` is a name-based UUID (version 5) of the notice's Message-ID and the case id,
  not a random version 4 one: a resent notice carries the very same report, so a desk
  that deduplicates by id sees one report.
- `classification` (baseline, A1, A2, B1, B2) is required by the csam type but is a legal
  assessment only the analyst can make: it is set when the case's category is one of those
  codes, and left out otherwise rather than invented.
- `evidence` is left out: a hotline never sends the material. `hash_values.sha256` (the
  body as fetched) is the evidence a desk can match.
- `evidence_source` is free text in the schema; `researcher_analysis` is the closest of
  its listed values to "assessed by a hotline analyst".
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from typing import Any

from workflows.core.emails import is_plain_address
from workflows.notify.notices import NoticeItem, NoticeRequest, iso_utc

XARF_VERSION = "4.0.0"
# The namespace of takedown's report ids: uuid5(NAMESPACE_URL, "…xarf-spec#takedown").
REPORT_NAMESPACE = uuid.UUID("f1ee3fc3-9825-5fce-903a-5f5ab7223d64")
_CLASSIFICATIONS = {"baseline": "baseline", "a1": "A1", "a2": "A2", "b1": "B1", "b2": "B2"}
_TAG_VALUE = re.compile(r"^[a-z0-9][a-z0-9_+.-]*$")  # xarf-core.json `tags` pattern
_HOSTNAME = re.compile(r"^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z0-9-]{2,}$")
_SHA256 = re.compile(r"^[a-fA-F0-9]{64}$")


def xarf_report(
    item: NoticeItem,
    *,
    reporter_org: str,
    reporter_contact: str,
    message_id: str,
    country: str | None = None,
) -> dict[str, Any]:
    """Return the XARF v4 report of ITEM, the same every time for the same notice."""
    if not is_plain_address(reporter_contact):
        raise ValueError(f"reporter_contact: {reporter_contact!r} is not an e-mail address")
    contact = {
        "org": reporter_org,
        "contact": reporter_contact,
        "domain": reporter_contact.rpartition("@")[2].lower(),
    }
    report: dict[str, Any] = {
        "xarf_version": XARF_VERSION,
        "report_id": str(uuid.uuid5(REPORT_NAMESPACE, f"{message_id}/{item.case_id}")),
        "timestamp": iso_utc(item.reported_at),  # when the content was seen and confirmed
        "reporter": contact,
        "sender": dict(contact),
        "source_identifier": item.addresses[0] if item.addresses else item.host,
        "category": "content",
        "type": "csam",
        "url": item.url,
        "evidence_source": "researcher_analysis",
        "detection_method": "manual_review",
        "verification_method": "manual",
        "verified_at": iso_utc(item.reported_at),
        "description": f"Case {item.reference}; please quote it when replying.",
        "tags": _tags(item),
    }
    report.update(_optional_fields(item, country))
    return report


def xarf_reports(request: NoticeRequest) -> list[dict[str, Any]]:
    """Return one XARF report per URL of REQUEST, in order."""
    return [
        xarf_report(
            item,
            reporter_org=request.sender_name,
            reporter_contact=request.sender,
            message_id=request.message_id,
            country=request.country,
        )
        for item in request.items
    ]


def _optional_fields(item: NoticeItem, country: str | None) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if _HOSTNAME.match(item.host) and not _is_ip(item.host):
        fields["domain"] = item.host  # A-label form already: urls.py stores punycode
    code = _CLASSIFICATIONS.get((item.category or "").strip().lower())
    if code is not None:
        fields["classification"] = code
    if item.content_sha256 and _SHA256.match(item.content_sha256):
        fields["hash_values"] = {"sha256": item.content_sha256.lower()}
    if country and re.fullmatch(r"[A-Z]{2}", country):
        fields["country_code"] = country
    return fields


def _tags(item: NoticeItem) -> list[str]:
    tags = []
    for namespace, value in (("case", item.reference), ("category", item.category)):
        value = (value or "").strip().lower()
        if _TAG_VALUE.match(value):
            tags.append(f"{namespace}:{value}")
    return tags


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
