"""Fuzzing the case endpoints: whatever arrives, a bad request is a 4xx and changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from deskapp import Desk, running_desk
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from workflows.core.urls import normalize_url
from workflows.errors import URLError
from workflows.web.schemas import CloseIn, HoldIn, NoteIn, ReasonIn, ReportIn

FUZZ = settings(
    max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)
OPEN, CLOSED = 1, 3  # the fixture's cases: 1 and 2 open, 3 closed
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["urls", "ref", "category", "reason", "text", "until", "days", "x"])
            | st.text(max_size=8),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)
# Each case endpoint, the body it takes, and whether it may come without one.
ENDPOINTS: dict[str, tuple[type[BaseModel], bool]] = {
    "/api/cases": (ReportIn, False),
    "/api/cases/{id}/close": (CloseIn, False),  # a close needs its reason's code
    "/api/cases/{id}/reopen": (ReasonIn, True),
    "/api/cases/{id}/notes": (NoteIn, False),
    "/api/cases/{id}/recheck": (ReasonIn, True),
    "/api/cases/{id}/hold": (HoldIn, False),
}


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    with running_desk(tmp_path) as running:
        running.report("http://files.example/1", "http://files.example/2")
        running.report("http://files.example/3")
        closed = running.client.post(
            f"/api/cases/{CLOSED}/close", json={"code": "duplicate"}, headers=running.supervisor
        )
        assert closed.status_code == 200
        yield running


def would_validate(model: type[BaseModel], optional: bool, body: Any) -> bool:
    """Return True if BODY is a request the endpoint should accept (so no refusal is due)."""
    if body is None:
        return optional
    try:
        model.model_validate(body)
    except ValidationError:
        return False
    return True


@FUZZ
@given(
    endpoint=st.sampled_from(sorted(ENDPOINTS)),
    case_id=st.sampled_from([OPEN, CLOSED]),
    body=JSON,
)
def test_any_json_a_case_endpoint_cannot_take_is_a_4xx_and_changes_nothing(
    desk: Desk, endpoint: str, case_id: int, body: Any
) -> None:
    model, optional = ENDPOINTS[endpoint]
    assume(not would_validate(model, optional, body))
    before = desk.snapshot()
    answer = desk.client.post(endpoint.format(id=case_id), json=body, headers=desk.supervisor)
    assert 400 <= answer.status_code < 500, answer.text
    assert isinstance(answer.json()["error"], str)
    assert desk.snapshot() == before


@FUZZ
@given(
    endpoint=st.sampled_from(sorted(ENDPOINTS)),
    raw=st.binary(max_size=60) | st.text(max_size=60).map(str.encode),
    content_type=st.sampled_from(
        ["application/json", "text/plain", "application/x-www-form-urlencoded", ""]
    ),
)
def test_any_bytes_posted_to_a_case_endpoint_never_make_a_5xx(
    desk: Desk, endpoint: str, raw: bytes, content_type: str
) -> None:
    before = desk.snapshot()
    answer = desk.client.post(
        endpoint.format(id=OPEN),
        content=raw,
        headers={**desk.supervisor, "content-type": content_type},
    )
    assert answer.status_code < 500, answer.text
    if answer.status_code >= 400:
        assert desk.snapshot() == before
    else:  # only an empty body may pass: the optional-body actions then act on the case
        assert raw.strip() in (b"", b"null") and ENDPOINTS[endpoint][1]


QUERY_KEYS = ["state", "route", "country", "network", "provider", "overdue", "ref", "q"]


@FUZZ
@given(
    pairs=st.lists(
        st.tuples(
            st.sampled_from([*QUERY_KEYS, "limit", "offset"]) | st.text(max_size=6),
            st.text(max_size=12),
        ),
        max_size=5,
    )
)
def test_any_query_string_on_the_case_list_is_answered_without_a_5xx(
    desk: Desk, pairs: list[tuple[str, str]]
) -> None:
    before = desk.snapshot()
    answer = desk.client.get(f"/api/cases?{urlencode(pairs)}", headers=desk.analyst)
    assert answer.status_code in (200, 422), answer.text
    if any(key not in [*QUERY_KEYS, "limit", "offset"] for key, _ in pairs):
        assert answer.status_code == 422
    assert desk.snapshot() == before


def refused(text: str) -> bool:
    try:
        normalize_url(text)
    except URLError:
        return True
    return False


CELL = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=20)


@FUZZ
@given(
    good=st.lists(st.integers(min_value=1, max_value=10**6), max_size=4),
    bad=CELL,
    position=st.integers(min_value=0, max_value=4),
    reference=CELL,
)
def test_a_csv_with_any_bad_row_is_refused_naming_it_and_stores_nothing(
    desk: Desk, good: list[int], bad: str, position: int, reference: str
) -> None:
    assume(refused(bad) and bad.strip())
    rows = [[f"http://files.example/{n}", reference] for n in good]
    rows.insert(min(position, len(rows)), [bad, reference])
    text = "url,reference\r\n" + "".join(
        ",".join('"' + cell.replace('"', '""') + '"' for cell in row) + "\r\n" for row in rows
    )
    before = desk.snapshot()
    answer = desk.client.post(
        "/api/cases/csv", files={"file": ("f.csv", text.encode())}, headers=desk.analyst
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == "file" and "row " in answer.json()["error"]
    assert desk.snapshot() == before


@FUZZ
@given(upload=st.binary(max_size=200))
def test_any_bytes_uploaded_as_a_csv_never_make_a_5xx(desk: Desk, upload: bytes) -> None:
    assume(not upload.lstrip(b"\xef\xbb\xbf \t").lower().startswith(b"url"))
    before = desk.snapshot()
    answer = desk.client.post(
        "/api/cases/csv", files={"file": ("f.csv", upload)}, headers=desk.analyst
    )
    assert answer.status_code == 422, answer.text
    assert desk.snapshot() == before
