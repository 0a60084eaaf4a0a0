"""Read contacts from RDAP entities (RFC 9083 §5.1) and their jCards (RFC 7095).

Answers are untrusted: entity trees are walked breadth-first with bounds on depth and
count, an entity nested inside one of its own handle (a loop) is not entered again, and
only addresses that are safe in a mail header are kept (workflows.core.emails, the same
rule as for the addresses in our own files and in every notice).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from workflows.core.emails import is_plain_address as is_plain_address

# RFC 9083 §10.2.4 roles, most useful first: who to write to when no `abuse` role exists.
FALLBACK_ROLES = ("noc", "technical", "administrative", "registrant")
MAX_ENTITY_DEPTH = 6
MAX_ENTITIES = 200


def extract_contacts(data: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Return (abuse e-mails, fallback e-mails) from every entity, nested ones too."""
    abuse: list[str] = []
    by_role: dict[str, list[str]] = {role: [] for role in FALLBACK_ROLES}
    for roles, emails in _entities(data.get("entities")):
        if "abuse" in roles:
            abuse += emails
        for role in FALLBACK_ROLES:
            if role in roles:
                by_role[role] += emails
    fallback = [e for role in FALLBACK_ROLES for e in by_role[role]]
    return list(dict.fromkeys(abuse)), list(dict.fromkeys(fallback))


def _entities(top: Any) -> Iterator[tuple[set[str], list[str]]]:
    """Yield (roles, e-mails) of each entity, breadth-first, bounded in depth and count.

    Breadth-first, so a loop or a flood deep down cannot use up the budget before the
    top-level entities are read; an entity inside one of the same handle is a loop
    (an entity containing itself, or two containing each other) and is not entered again.
    """
    level: list[tuple[Any, frozenset[str]]] = [(top, frozenset())]
    seen = 0
    for _depth in range(MAX_ENTITY_DEPTH + 1):
        following: list[tuple[Any, frozenset[str]]] = []
        for entities, above in level:
            for entity in entities if isinstance(entities, list) else ():
                if not isinstance(entity, dict) or seen >= MAX_ENTITIES:
                    continue
                handle = entity.get("handle")
                if isinstance(handle, str) and handle.upper() in above:
                    continue
                seen += 1
                yield _roles(entity.get("roles")), vcard_emails(entity.get("vcardArray"))
                inside = above | {handle.upper()} if isinstance(handle, str) else above
                following.append((entity.get("entities"), inside))
        level = following


def entity_roles(entity: Any) -> set[str]:
    """Return the roles of ENTITY (an RDAP entity object), lowercased; none if not one."""
    return _roles(entity.get("roles")) if isinstance(entity, dict) else set()


def _roles(value: Any) -> set[str]:
    """Return an entity's roles, lowercased; a lone string counts as one role."""
    roles = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return {r.lower() for r in roles if isinstance(r, str)}


def vcard_emails(vcard: Any) -> list[str]:
    """Return the e-mail addresses in a jCard (RFC 7095), lowercased, header-safe only."""
    if not (isinstance(vcard, list) and len(vcard) == 2 and isinstance(vcard[1], list)):
        return []
    found = []
    for prop in vcard[1]:
        if isinstance(prop, list) and len(prop) >= 4 and prop[0] == "email":
            value = prop[3]
            if isinstance(value, str) and is_plain_address(value.strip()):
                found.append(value.strip().lower())
    return found
