"""Secrets from a variable or from a file: TAKEDOWN_<NAME> or TAKEDOWN_<NAME>_FILE.

Every variable that may carry a password (SECRETS) can instead name a file that holds it,
the way container platforms hand secrets over (Compose and Docker secrets under
/run/secrets, Kubernetes secret volumes): the value then never sits in the environment,
which `ps e`, /proc/<pid>/environ and crash reports show.

    NAME set                     the value                                   as before
    NAME_FILE set                the file's one line, stripped               read at start-up
    both set (at one level)      ConfigError naming both                     exit 2
    file unreadable, empty,      ConfigError naming NAME_FILE and the path,  exit 2
    not UTF-8, over MAX_BYTES,   never the file's content
    more than one line

A level is the environment or the TAKEDOWN_CONFIG file. The environment wins over the file
for the pair as a whole: NAME_FILE in the environment overrides NAME in the file, so an
operator can move one secret into a file without editing the shared configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from workflows.errors import ConfigError

PREFIX = "TAKEDOWN_"
# The variables whose value is or may hold a password: the URLs with a user part (the
# database's, Redis's, the relay's, the mailbox's, the re-check proxies') and the passwords.
SECRETS = (
    "DATABASE_URL",
    "REDIS_URL",
    "SMTP_URL",
    "SMTP_PASSWORD",
    "IMAP_URL",
    "IMAP_PASSWORD",
    "FETCH_PROXY",
)
MAX_BYTES = 64 * 1024  # a secret is one line; /dev/zero or a log file by mistake is not


@dataclass(frozen=True)
class Secret:
    """One secret's value (None: unset) and the variable it came from, for messages."""

    value: str | None
    variable: str


def read_secrets(file_values: Mapping[str, str], env: Mapping[str, str]) -> dict[str, Secret]:
    """Return every secret of SECRETS, by name, from ENV or else from FILE_VALUES."""
    found = {}
    for name in SECRETS:
        pair = (PREFIX + name, PREFIX + name + "_FILE")
        level = env if any(key in env for key in pair) else file_values
        found[name] = _secret(name, level.get(pair[0]) or None, level.get(pair[1]) or None)
    return found


def _secret(name: str, direct: str | None, path: str | None) -> Secret:
    variable = PREFIX + name
    if direct is not None and path is not None:
        raise ConfigError(f"{variable} and {variable}_FILE are both set: set one of them")
    if path is None:
        return Secret(direct, variable)
    return Secret(read_secret_file(variable + "_FILE", path), variable + "_FILE")


def read_secret_file(variable: str, path_text: str) -> str:
    """Return the one line the file PATH_TEXT holds; ConfigError naming VARIABLE if none."""
    path = Path(path_text)
    try:
        path = path.expanduser()
        with path.open("rb") as file:
            data = file.read(MAX_BYTES + 1)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConfigError(f"{variable}: cannot read {path}: {reason}") from None
    except (RuntimeError, ValueError) as error:  # "~name" of no such user; a NUL in the name
        raise ConfigError(f"{variable}: cannot read {path}: {error}") from None
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{variable}: {path} is larger than {MAX_BYTES} bytes: not a secret")
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"{variable}: {path} is not UTF-8 text") from None
    if not text:
        raise ConfigError(f"{variable}: {path} is empty")
    if len(text.splitlines()) > 1:
        # A password or URL is one line; a second one is a mistake (or an injection).
        raise ConfigError(f"{variable}: {path} holds more than one line")
    return text
