"""One rule for every e-mail address takedown accepts: a plain address safe in a header.

The same check decides the From address (TAKEDOWN_SENDER), every address in the hotline
and CDN files, the contacts read from RDAP answers and the addresses a notice or its XARF
report is built with, so an address one part accepts no other part refuses.

An address is accepted when it

- is at most 254 characters long (RFC 5321 §4.5.3.1.3);
- has no space, line break or other control or invisible formatting character, so it
  can never end a header line or start a new header (header injection);
- has exactly one "@", and before it at most 64 characters of RFC 5322 atext and dots:
  no quotes, commas, angle brackets or semicolons that could add a display name or
  another recipient;
- passes `email_validator`'s syntax check with SMTPUTF8, quoted local parts, domain
  literals and display names all refused, and special-use domains (`.local`, `.invalid`,
  `localhost`, …) refused except `.test` (RFC 6761), which the tests and the simulated
  internet use;
- has a domain with a dot, written in ASCII: an internationalised domain must be given in
  its IDNA form (`xn--…`), since the mail relay is not assumed to speak SMTPUTF8; the
  message says what to write instead.

Importing `email_validator` loads its syntax modules and `idna` only: dnspython is
imported lazily by its `deliverability` module, which is loaded only when a caller asks
for a deliverability check. This module never does (`check_deliverability=False`), so the
core stays free of network I/O (checked: `import email_validator` leaves `dns` and
`socket` out of `sys.modules`).
"""

from __future__ import annotations

import string
import unicodedata

from email_validator import EmailNotValidError, validate_email

MAX_LENGTH = 254  # RFC 5321 §4.5.3.1.3: a path is at most 256 octets, with its <>
# RFC 5322 §3.2.3 atext, and the dots between atoms: all an unquoted local part may hold.
_LOCAL_CHARS = frozenset(string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-.")
# Controls, invisible formatting, surrogates, line and paragraph separators.
_UNSAFE = ("Cc", "Cf", "Cs", "Zl", "Zp")
_EXAMPLE = '"abuse@example.net"'


def email_problem(address: str) -> str | None:
    """Describe why ADDRESS is not a plain address safe for a mail header, or return None.

    The description reads after the address, e.g. `"a b@x.net" must not contain spaces…`.
    """
    if len(address) > MAX_LENGTH:
        return f"is longer than {MAX_LENGTH} characters"
    if any(char.isspace() or unicodedata.category(char) in _UNSAFE for char in address):
        return "must not contain spaces, line breaks or control characters"
    local, at, domain = address.rpartition("@")
    if not at or "@" in local:
        return f'must be one address like {_EXAMPLE} (exactly one "@")'
    if not local:
        return f'needs a name before the "@", like {_EXAMPLE}'
    if not set(local) <= _LOCAL_CHARS:
        return 'has characters not allowed before the "@" (such as commas, quotes or <>)'
    if "." not in domain:
        return 'needs a domain with a dot after the "@", like "example.net"'
    try:
        # Syntax only: check_deliverability=False never loads dnspython or asks the DNS.
        valid = validate_email(
            address,
            allow_smtputf8=False,
            allow_quoted_local=False,
            allow_domain_literal=False,
            allow_display_name=False,
            strict=True,  # also refuse more than 64 characters before the "@" (RFC 5321)
            check_deliverability=False,
            test_environment=True,  # accept the RFC 6761 `.test` names
        )
    except EmailNotValidError as error:
        reason = str(error).rstrip(".")
        return f"is not a valid address: {reason[:1].lower()}{reason[1:]}"
    if not domain.isascii():
        ascii_form = f"{local}@{valid.ascii_domain}"
        return f'has a domain that is not ASCII: write it in its IDNA form, "{ascii_form}"'
    return None


def is_plain_address(address: str) -> bool:
    """Tell whether ADDRESS is a bare address that is safe to put in a mail header."""
    return email_problem(address) is None
