"""One vocabulary: every closed set of workflows.kinds is complete wherever it is spelled out.

The timeline has a title for every event kind (and none for a kind that does not exist),
every notice kind has its three templates in every shipped language, and the API's
OpenAPI description lists every member of each set it names.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
from deskapp import running_desk

from workflows.kinds import (
    CaseState,
    CheckOutcome,
    EventKind,
    NoticeKind,
    NoticeStatus,
    Role,
)
from workflows.notify.notices import shipped_templates
from workflows.web.timeline import TITLES, describe

PARTS = ("subject.txt", "txt", "html")
WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"


# The timeline ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(EventKind), ids=str)
def test_every_event_kind_has_a_timeline_title(kind: EventKind) -> None:
    assert kind.value in TITLES, f"web/timeline.py TITLES has no entry for {kind.value!r}"
    title, _ = describe(kind.value, {})
    assert title and title == title.strip()


def test_the_timeline_has_no_title_for_a_kind_that_is_never_recorded() -> None:
    unknown = set(TITLES) - {kind.value for kind in EventKind}
    assert not unknown, f"TITLES names kinds that are not EventKinds: {sorted(unknown)}"


@pytest.mark.parametrize("kind", list(EventKind), ids=str)
def test_every_event_kind_is_recorded_somewhere(kind: EventKind) -> None:
    # An EventKind nothing records is a stale member: drop it, or record it.
    recorders = [
        path
        for path in WORKFLOWS.rglob("*.py")
        if path.name not in ("kinds.py", "timeline.py") and "sim" not in path.parts
    ]
    assert recorders
    name = f"EventKind.{kind.name}"
    assert any(name in path.read_text(encoding="utf-8") for path in recorders), name


# The notice templates ----------------------------------------------------------------


def languages() -> list[Path]:
    """Return the shipped language folders (the ones not starting with "_")."""
    root = shipped_templates()
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))


def test_the_shipped_templates_have_languages() -> None:
    assert {"en", "de", "fr"} <= {folder.name for folder in languages()}


@pytest.mark.parametrize("part", PARTS)
@pytest.mark.parametrize("kind", list(NoticeKind), ids=str)
def test_every_notice_kind_has_its_templates_in_every_language(kind: NoticeKind, part: str) -> None:
    missing = [
        f"{folder.name}/{kind.value}.{part}"
        for folder in languages()
        if not (folder / f"{kind.value}.{part}").is_file()
    ]
    assert not missing, f"missing notice templates: {missing}"


def test_no_template_is_shipped_for_a_kind_that_does_not_exist() -> None:
    kinds = {kind.value for kind in NoticeKind}
    strays = [
        f"{folder.name}/{path.name}"
        for folder in languages()
        for path in folder.iterdir()
        if not path.name.startswith("_") and path.name.split(".")[0] not in kinds
    ]
    assert not strays, f"templates of unknown notice kinds: {strays}"


# The API's description ---------------------------------------------------------------


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with running_desk(tmp_path_factory.mktemp("home")) as desk:
        answer = desk.client.get("/openapi.json")
        assert answer.status_code == 200
        yield answer.json()


def enum_of(spec: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Return the enum a property's schema allows, following $ref, anyOf (nullable), items."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        return enum_of(spec, spec["components"]["schemas"][name])
    if "enum" in schema:
        return list(schema["enum"])
    if "items" in schema:
        return enum_of(spec, schema["items"])
    for option in schema.get("anyOf", []):
        if option.get("type") != "null":
            return enum_of(spec, option)
    raise AssertionError(f"no enum in {schema}")


def values(kinds: type[StrEnum]) -> list[str]:
    return [member.value for member in kinds]


@pytest.mark.parametrize(
    ("model", "field", "kinds"),
    [
        ("CaseOut", "state", CaseState),
        ("CaseOut", "held_from", CaseState),
        ("NoticeOut", "kind", NoticeKind),
        ("NoticeOut", "status", NoticeStatus),
        ("EventOut", "kind", EventKind),
        ("CheckOut", "outcome", CheckOutcome),
        ("UserIn", "role", Role),
        ("UserOut", "role", Role),
    ],
)
def test_the_api_schemas_list_every_member(
    spec: dict[str, Any], model: str, field: str, kinds: type[StrEnum]
) -> None:
    schema = spec["components"]["schemas"][model]["properties"][field]
    assert sorted(enum_of(spec, schema)) == sorted(values(kinds))


def test_the_case_state_filter_lists_every_case_state(spec: dict[str, Any]) -> None:
    parameters = spec["paths"]["/api/cases"]["get"]["parameters"]
    (state,) = [p for p in parameters if p["name"] == "state"]
    assert sorted(enum_of(spec, state["schema"])) == sorted(values(CaseState))
