"""Read contacts from RDAP answers: entities (RFC 9083 §5.1), their jCards (RFC 7095) and
remarks (§4.3), each ranked by how far it can be trusted to be the network's abuse desk.

    role:abuse          an entity with role `abuse` (RFC 9083 §10.2.4), nested ones too
                        (ARIN's abuse POC inside the org entity)
    remarks             an abuse address named in the network's or an entity's remarks:
                        "please send abuse reports to abuse@…", "If related with spam,
                        send mail to abuse@…"
    abuse-local-part    an address such as abuse@… or noc-abuse@… of any other entity
    role:noc, role:technical, role:administrative, role:registrant
    entity              an entity with no role (AFRINIC publishes such) or another role

`rank_contacts` lists every address once, at its most trusted place; `choose_contacts`
takes the first tier that has an address not on the registry placeholder list (the other
tiers become the fallback, placeholders are passed over). The tracer adds the last
resorts: the parent network's contact, then a placeholder.

Answers are untrusted: entity trees are walked breadth-first with bounds on depth and
count, an entity nested inside one of its own handle (a loop) is not entered again, remark
text is read in bounded amounts, and only addresses that are safe in a mail header are kept
(workflows.core.emails, the same rule as for the addresses in our own files and notices).
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from workflows.core.emails import is_plain_address as is_plain_address

# RFC 9083 §10.2.4 roles, most useful first: who to write to when no `abuse` role exists.
FALLBACK_ROLES = ("noc", "technical", "administrative", "registrant")
MAX_ENTITY_DEPTH = 6
MAX_ENTITIES = 200
MAX_REMARKS = 32  # remark objects read per network or entity
MAX_REMARK_LINES = 64  # description lines read per remark
MAX_LINE = 1000  # characters read per line
ROLE_ABUSE, REMARKS, LOCAL_PART, ENTITY = "role:abuse", "remarks", "abuse-local-part", "entity"
# The tiers, most trusted first; the fallback roles are one tier, as every notice to a
# network without an abuse desk has gone to all of them together.
TIERS: tuple[tuple[str, ...], ...] = (
    (ROLE_ABUSE,),
    (REMARKS,),
    (LOCAL_PART,),
    tuple(f"role:{role}" for role in FALLBACK_ROLES),
    (ENTITY,),
)
# Sources that name an abuse desk; any other is a fallback (routing's abuse_fallback).
ABUSE_DESKS = frozenset({ROLE_ABUSE, REMARKS})
# An address in free text: RFC 5322 atext before the "@", dot-separated labels after it.
_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
# Words that make an address in the same clause of a remark an abuse desk.
_ABUSE_WORDS = re.compile(r"abuse|spam|complain|phish", re.IGNORECASE)
_CLAUSES = re.compile(r"[;|]|(?<=\.)\s+")


@dataclass(frozen=True)
class Contact:
    """One address an RDAP answer names, and where it was found."""

    address: str
    source: str


@dataclass(frozen=True)
class Choice:
    """The contacts a notice goes to, where they came from, and the ones after them."""

    abuse: tuple[str, ...] = ()
    source: str | None = None
    others: tuple[str, ...] = ()  # the next tiers' addresses, best first
    placeholders: tuple[str, ...] = ()  # registry placeholders, never in abuse or others

    @property
    def fallback(self) -> bool:
        """Tell whether the chosen contacts are not an abuse desk but other contacts."""
        return bool(self.abuse) and self.source not in ABUSE_DESKS


class _Found(NamedTuple):
    roles: set[str]
    emails: list[str]
    remarks: Any


def extract_contacts(data: Any) -> tuple[list[str], list[str]]:
    """Return (abuse-role e-mails, fallback-role e-mails) of every entity, nested ones too."""
    abuse: list[str] = []
    by_role: dict[str, list[str]] = {role: [] for role in FALLBACK_ROLES}
    top = data.get("entities") if isinstance(data, dict) else None
    for found in _entities(top):
        if "abuse" in found.roles:
            abuse += found.emails
        for role in FALLBACK_ROLES:
            if role in found.roles:
                by_role[role] += found.emails
    fallback = [e for role in FALLBACK_ROLES for e in by_role[role]]
    return list(dict.fromkeys(abuse)), list(dict.fromkeys(fallback))


def rank_contacts(data: Any) -> list[Contact]:
    """Return every address of an RDAP object, most trusted first, each once."""
    top = data if isinstance(data, dict) else {}
    found = list(_entities(top.get("entities")))
    abuse = [f for f in found if "abuse" in f.roles]
    others = [f for f in found if "abuse" not in f.roles]
    ranked = [Contact(e, ROLE_ABUSE) for f in abuse for e in f.emails]
    for remarks in [top.get("remarks"), *(f.remarks for f in found)]:
        ranked += [Contact(e, REMARKS) for e in remark_addresses(remarks)]
    ranked += [Contact(e, LOCAL_PART) for f in others for e in f.emails if _abuse_local(e)]
    for role in [*FALLBACK_ROLES, None]:
        source = ENTITY if role is None else f"role:{role}"
        ranked += [
            Contact(e, source) for f in others if _best_role(f.roles) == role for e in f.emails
        ]
    unique: dict[str, Contact] = {}
    for contact in ranked:  # each address at its most trusted place
        unique.setdefault(contact.address, contact)
    return list(unique.values())


def choose_contacts(contacts: list[Contact], placeholders: Container[str] = ()) -> Choice:
    """Choose the first tier with an address that is no registry placeholder."""
    held = tuple(c.address for c in contacts if c.address in placeholders)
    real = [c for c in contacts if c.address not in placeholders]
    tiers = [[c for c in real if c.source in tier] for tier in TIERS]
    tiers.append([c for c in real if not any(c.source in tier for tier in TIERS)])  # parent…
    for index, chosen in enumerate(tiers):
        if chosen:
            after = tuple(c.address for tier in tiers[index + 1 :] for c in tier)
            return Choice(tuple(c.address for c in chosen), chosen[0].source, after, held)
    return Choice(placeholders=held)


def remark_addresses(remarks: Any) -> list[str]:
    """Return the abuse addresses named in RFC 9083 remarks (§4.3) text.

    An address counts when its local part says abuse, or the clause of the line it is in
    (or the remark's title) speaks of abuse, spam, complaints or phishing; an address alone
    on a line continues the line before it ("Please send abuse reports to" / "abuse@…").
    """
    found: list[str] = []
    for remark in remarks[:MAX_REMARKS] if isinstance(remarks, list) else ():
        if not isinstance(remark, dict):
            continue
        title = remark.get("title")
        titled = isinstance(title, str) and bool(_ABUSE_WORDS.search(title[:MAX_LINE]))
        pending = False  # the line before spoke of abuse but named no address
        for line in _lines(remark.get("description")):
            emails = _text_emails(line)
            if not emails:
                pending = bool(_ABUSE_WORDS.search(line))
                continue
            alone = not any(c.isalpha() for c in _EMAIL.sub("", line))
            for clause in _CLAUSES.split(line):
                words = _ABUSE_WORDS.search(_EMAIL.sub("", clause))
                said = titled or (pending and alone) or words is not None
                found += [e for e in _text_emails(clause) if said or _abuse_local(e)]
            pending = False
    return list(dict.fromkeys(found))


def _lines(description: Any) -> list[str]:
    """Return a remark's description lines (a line break inside one starts another),
    bounded in count and length."""
    given = [description] if isinstance(description, str) else description
    if not isinstance(given, list):
        return []
    lines = [
        part[:MAX_LINE]
        for line in given[:MAX_REMARK_LINES]
        if isinstance(line, str)
        for part in line[: MAX_LINE * 4].splitlines()
    ]
    return lines[:MAX_REMARK_LINES]


def _text_emails(text: str) -> list[str]:
    """Return the header-safe addresses in free text, lowercased."""
    found = (m.group().strip(".").lower() for m in _EMAIL.finditer(text))
    return [e for e in found if is_plain_address(e)]


def _abuse_local(address: str) -> bool:
    """Tell whether an address's local part names an abuse desk (abuse@, noc-abuse@, …)."""
    return "abuse" in address.rpartition("@")[0]


def _best_role(roles: set[str]) -> str | None:
    """Return the most useful fallback role among ROLES, None when there is none."""
    return next((role for role in FALLBACK_ROLES if role in roles), None)


def _entities(top: Any) -> Iterator[_Found]:
    """Yield (roles, e-mails, remarks) of each entity, breadth-first, bounded in depth and count.

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
                emails = vcard_emails(entity.get("vcardArray"))
                yield _Found(_roles(entity.get("roles")), emails, entity.get("remarks"))
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
