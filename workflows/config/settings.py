"""Read takedown's configuration from the environment (and an optional TOML file).

Every variable is validated once, at start-up; a bad value raises ConfigError naming the
variable, so the CLI can exit 2 with one line before anything is changed. A variable that
may hold a password may name a file holding it instead (TAKEDOWN_<NAME>_FILE, secrets.py);
messages show such values with the password replaced (redact_url), never whole.

pydantic-settings validates (issue 13): settings_model() is a BaseSettings with Settings'
fields and one validator running each field's check (_FIELDS); load_settings copies what
it accepts into the frozen Settings. Ours on top, as its own sources cannot do it: the
values come from the mapping given (tests, `takedown up` and the demo pass one), merged
here with the TAKEDOWN_CONFIG file and NAME_FILE, and reach the model as init values (it
reads no os.environ, .env or secrets folder itself); only upper-case names count; and a
ValidationError never reaches the user: its first problem becomes one ConfigError line in
our words naming the variable (NAME_FILE for a secret read from a file), never quoting a
secret (hide_input_in_errors besides). pydantic is imported by the first load_settings,
not with this module: its ~0.1 s would double `takedown --help`, which reads no settings.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import math
import os
import re
import tomllib
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import SplitResult, urlsplit

from workflows.config.secrets import SECRETS, read_secrets
from workflows.config.tomlfile import country_problem
from workflows.core.durations import parse_duration
from workflows.core.emails import email_problem
from workflows.errors import ConfigError

if TYPE_CHECKING:
    from pydantic import ValidationError
    from pydantic_settings import BaseSettings

PREFIX = "TAKEDOWN_"
_COUNTRY = re.compile(r"^[A-Z]{2}$")


@dataclass(frozen=True)
class Settings:
    """The validated configuration of one takedown process."""

    home: Path
    country: str
    dns_servers: tuple[tuple[str, int], ...]  # empty: the system resolver
    dns_timeout: float
    rdap_base: str | None  # None: each registry's own RDAP server
    rdap_timeout: float
    rdap_rate: float  # RDAP requests per registry per second
    rdap_max_wait: float  # longest Retry-After we wait out inside one lookup
    rdap_cache_ttl: float
    hotlines: Path | None  # None: the shipped directory
    cdns: Path | None  # None: the shipped CDN list
    forms: Path | None  # None: the shipped web-form desks
    platforms: Path | None = None  # None: the shipped platform rules
    placeholders: Path | None = None  # None: the shipped registry placeholder list
    database_url: str | None = None  # None: SQLite in home
    redis_url: str | None = None  # None: an embedded Redis under home
    smtp_url: str = "smtp://localhost:25"
    smtp_password: str | None = None  # from TAKEDOWN_SMTP_PASSWORD(_FILE); never logged
    sender: str | None = None
    sender_name: str = "takedown"
    return_path: str | None = None  # envelope sender with {token} (VERP); None: the sender
    imap_url: str | None = None  # the mailbox read for bounces and replies
    imap_password: str | None = None  # from TAKEDOWN_IMAP_PASSWORD(_FILE); never logged
    policy: Path | None = None  # None: the shipped policy
    templates: Path | None = None  # a folder overriding the shipped templates
    fetch_proxies: tuple[str, ...] = ()  # vantages of re-checks; empty: direct
    fetch_user_agent: str | None = None  # None: a current mainstream browser's
    fetch_allow: tuple[str, ...] = ()  # CIDRs the re-checker may reach though not global
    trusted_proxies: tuple[str, ...] = ()  # CIDRs whose X-Forwarded-For/-Proto the desk believes
    fetch_deadline: float = 30.0  # seconds one re-check may take in all, redirects included
    fetch_max_bytes: int = 16 * 1024 * 1024  # body bytes hashed; a longer body is cut there
    fetch_per_host: int = 4  # re-checks at once to one host name, per worker process
    fetch_parallel: int = 200  # re-checks at once per worker process
    concurrency: int = 2
    queues: tuple[tuple[str, str], ...] = ()  # (task, queue) over the defaults
    claim_lease: float = 150.0  # seconds a sweep's claim lasts before the work is handed out again
    sweep_lease: float = 30.0  # seconds a dead sweeper's lock holds the sweep from the others
    retention: float | None = None  # seconds after closing that a case is purged; None: never
    metrics_address: tuple[str, int] | None = None  # a worker's /metrics; None: not served
    log_format: str = "text"  # text | json (one object per line)

    def __repr__(self) -> str:
        """Show the settings without secrets."""
        return f"Settings(home={self.home!s}, country={self.country}, ...)"


def default_home(environ: Mapping[str, str]) -> Path:
    """Return the per-user data directory (XDG base directory specification)."""
    base = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "takedown"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from ENVIRON (default: os.environ) and TAKEDOWN_CONFIG, if set.

    The secrets (secrets.SECRETS) may come from TAKEDOWN_<NAME>_FILE instead.
    """
    env = dict(os.environ if environ is None else environ)
    try:
        return _validated(env)
    except ConfigError as error:
        # One line even when a value or a path holds a line break: the break is shown escaped.
        one_line = _LINE_BREAK.sub(lambda found: repr(found.group())[1:-1], error.message)
        if one_line == error.message:
            raise
        raise ConfigError(one_line) from None


def _validated(env: Mapping[str, str]) -> Settings:
    """Read every variable (_raw_values), validate them with the model, return Settings."""
    from pydantic import ValidationError  # here, not above: see the module's docstring

    raw = _raw_values(env)
    values: dict[str, Any] = dict(raw)
    try:
        checked = settings_model()(**values)
    except ValidationError as error:
        raise _config_error(error, raw) from None
    return Settings(**{name: getattr(checked, name) for name in _FIELDS})


_LINE_BREAK = re.compile("[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")  # str.splitlines' breaks


class _Raw(NamedTuple):
    """A variable's text (its default if unset; None: no default) and the variable's name."""

    text: str | None
    variable: str  # TAKEDOWN_<NAME>, or TAKEDOWN_<NAME>_FILE for a secret read from a file


class _Problem(ValueError):
    """A check's ConfigError message, carried through pydantic as the ValueError it wants."""


def _raw_values(env: Mapping[str, str]) -> dict[str, _Raw]:
    """Return every field's _Raw: from ENV, else the TAKEDOWN_CONFIG file, else its default.

    Only upper-case TAKEDOWN_<NAME> counts (the file's keys are upper-cased: both spellings);
    an empty value counts as unset. A secret comes from secrets.read_secrets.
    """
    from_file = _file_values(env.get(PREFIX + "CONFIG"))
    values = {**from_file, **env}
    secrets = read_secrets(from_file, env)
    raw = {}
    for field, spec in _FIELDS.items():
        secret = secrets.get(spec.name.removeprefix(PREFIX))
        if secret is not None:
            text, variable = secret.value, secret.variable
        else:
            text, variable = values.get(spec.name), spec.name
        raw[field] = _Raw(text or spec.default, variable)
    raw["home"] = raw["home"]._replace(text=raw["home"].text or str(default_home(env)))
    return raw


@functools.cache
def settings_model() -> type[BaseSettings]:
    """Return the pydantic-settings model that validates Settings, built at the first call.

    Its fields are Settings' (types and defaults); one validator runs each field's check on
    a _Raw (a value of any other kind is taken as already parsed). It reads nothing itself.
    """
    from pydantic import ValidationInfo, create_model, field_validator
    from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

    class Checked(BaseSettings):
        model_config = SettingsConfigDict(
            frozen=True,
            case_sensitive=True,
            hide_input_in_errors=True,  # str(ValidationError) would quote a password
            extra="forbid",
        )

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            # Only what load_settings hands over: never os.environ, a .env file or a
            # secrets folder behind the mapping's back.
            return (init_settings,)

        @field_validator("*", mode="before")
        @classmethod
        def check(cls, value: object, info: ValidationInfo) -> object:
            if not isinstance(value, _Raw):
                return value
            try:
                return _FIELDS[str(info.field_name)].check(value.text, value.variable)
            except ConfigError as error:
                raise _Problem(error.message) from None

    hints = typing.get_type_hints(Settings)
    fields: dict[str, Any] = {
        field.name: (
            hints[field.name],
            ... if field.default is dataclasses.MISSING else field.default,
        )
        for field in dataclasses.fields(Settings)
    }
    return create_model("TakedownSettings", __base__=Checked, **fields)


def _config_error(error: ValidationError, raw: Mapping[str, _Raw]) -> ConfigError:
    """Return the first problem of ERROR as a ConfigError naming the variable, not the value."""
    first = error.errors(include_url=False, include_input=False)[0]
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, _Problem):
        return ConfigError(str(cause))  # the check's own message
    # pydantic's own words, after a bug: a check returned the wrong type or let a library's
    # ValueError through. Not for a secret: such words may quote the value.
    field = str(first["loc"][0]) if first["loc"] else ""
    variable = raw[field].variable if field in raw else PREFIX + field.upper()
    problem = "is not a usable value" if field in _SECRET_FIELDS else first["msg"]
    return ConfigError(f"{variable}: {problem}")


QUEUE_TASKS = ("trace", "steps", "send", "check", "inbox")
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def parse_queues(text: str) -> tuple[tuple[str, str], ...]:
    """Parse TAKEDOWN_QUEUES: a comma list of task=queue (tasks: trace, steps, send, check)."""
    routes: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        task, equals, queue = (s.strip() for s in part.partition("="))
        if not equals or task not in QUEUE_TASKS:
            raise ConfigError(
                f"{PREFIX}QUEUES: {part!r}: expected task=queue, task one of "
                + ", ".join(QUEUE_TASKS)
            )
        if not _QUEUE_NAME.match(queue):
            raise ConfigError(f"{PREFIX}QUEUES: {queue!r}: not a queue name (letters, digits, ._-)")
        if task in routes:
            raise ConfigError(f"{PREFIX}QUEUES: {task} is routed twice")
        routes[task] = queue
    return tuple(routes.items())


def redact_url(url: str) -> str:
    """Return URL with the password of its user part replaced by ***, for messages and logs."""
    head, separator, rest = url.partition("://")
    if not separator:
        head, rest = "", url
    # The last "@": a password may hold "/", "#" or "@" that its owner forgot to escape.
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{head}{separator}{userinfo.partition(':')[0]}:***@{host}"


def parse_retention(text: str, what: str) -> float:
    """Parse a retention period such as 365d; a bare number is refused, not taken as seconds."""
    # Purging cannot be undone: "365" must not erase everything closed six minutes ago.
    if text.strip().replace(".", "", 1).isdigit():
        raise ConfigError(f"{what}: {text!r} needs a unit, like 365d")
    seconds = parse_duration(text, what=what)
    if seconds <= 0:
        raise ConfigError(f"{what}: must be more than zero")
    return seconds


def parse_dns_servers(text: str) -> tuple[tuple[str, int], ...]:
    """Parse "host[:port]" items ("[v6]:port" for IPv6); hosts must be IP addresses."""
    servers = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        host, port = item, 53
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            if rest:
                port = _port(rest.removeprefix(":"), item)
        elif item.count(":") == 1:
            host, port_text = item.split(":")
            port = _port(port_text, item)
        try:
            # An IP, not a name: resolving the resolver's own name would ask the system
            # resolver, which must never see a query we did not mean it to see.
            ipaddress.ip_address(host)
        except ValueError:
            raise ConfigError(
                f"{PREFIX}DNS_SERVERS: {item!r} is not an IP address with an optional port"
            ) from None
        servers.append((host, port))
    return tuple(servers)


def _port(text: str, item: str) -> int:
    port = _whole(text)
    if port is None or not 0 < port < 65536:
        raise ConfigError(f"{PREFIX}DNS_SERVERS: bad port in {item!r}")
    return port


def _whole(text: str) -> int | None:
    """Return TEXT as a whole number if it is one in digits (and not thousands long)."""
    if not text.isdigit():
        return None
    try:
        return int(text)
    except ValueError:  # "²" is a digit to isdigit, not to int; so is a 5,000-digit number
        return None


def _path(text: str, variable: str) -> Path:
    try:
        return Path(text).expanduser()
    except RuntimeError:  # "~name/…" where no user is called name
        raise ConfigError(f"{variable}: {text!r}: no such user's home folder") from None


def _country(text: str, variable: str) -> str:
    """Return the hotline's country: an assigned ISO 3166-1 alpha-2 code (UK and XX are
    not: they would route every domestic host as foreign)."""
    code = text.strip().upper()
    problem = country_problem(code) if _COUNTRY.match(code) else None
    if not _COUNTRY.match(code) or problem is not None:
        problem = problem or 'must be an ISO 3166 alpha-2 code like "GB"'
        raise ConfigError(f"{variable}: {text!r} {problem}")
    return code


def _rdap_base(text: str | None, variable: str) -> str | None:
    if text is None:
        return None
    parts = _urlsplit(text.strip())
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{variable}: {redact_url(text)!r} is not an http(s) URL")
    return text.strip().rstrip("/")


def _urlsplit(text: str) -> SplitResult | None:
    """Return the parts of the URL TEXT, or None where urlsplit refuses it."""
    try:
        return urlsplit(text)
    except ValueError:  # a bad [IPv6] host; a netloc NFKC would change (the message quotes it)
        return None


def _rate(text: str, variable: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        rate = 0.0
    if not 0 < rate < math.inf:  # nan and inf are floats too
        raise ConfigError(f"{variable}: {text!r} is not a positive number per second")
    return rate


def _existing_file(text: str | None, variable: str) -> Path | None:
    if text is None:
        return None
    path = _path(text, variable)
    try:
        found = path.is_file()
    except OSError:  # a name too long, say: is_file passes on all but "not found"
        found = False
    if not found:
        raise ConfigError(f"{variable}: no such file: {path}")
    return path


def _file_values(path_text: str | None) -> dict[str, str]:
    """Read TAKEDOWN_* variables from a TOML file; the environment wins over it."""
    if not path_text:
        return {}
    path = Path(path_text)
    try:
        path = path.expanduser()
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    # ValueError: not UTF-8, not TOML, a NUL in the name; RuntimeError: "~name", no such user
    except (OSError, ValueError, RuntimeError) as error:
        raise ConfigError(f"{PREFIX}CONFIG: {path}: {error}") from None
    values = {}
    for key, value in data.items():
        name = key.upper() if key.upper().startswith(PREFIX) else PREFIX + key.upper()
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(f"{PREFIX}CONFIG: {path}: {key} must be a string or a number")
        values[name] = str(value)
    return values


def _existing_dir(text: str | None, variable: str) -> Path | None:
    if text is None:
        return None
    path = _path(text, variable)
    try:
        found = path.is_dir()
    except OSError:  # a name too long, say: is_dir passes on all but "not found"
        found = False
    if not found:
        raise ConfigError(f"{variable}: no such folder: {path}")
    return path


def _redis_url(text: str | None, variable: str) -> str | None:
    if text is None:
        return None
    parts = _urlsplit(text)
    if parts is None or parts.scheme not in ("redis", "rediss", "redis+socket", "unix"):
        raise ConfigError(
            f"{variable}: {redact_url(text)!r} is not a redis://, rediss:// or redis+socket:// URL"
        )
    return text


def _database_url(text: str | None, variable: str) -> str | None:
    if text is None:
        return None
    from sqlalchemy.engine import make_url  # here: `takedown trace` never loads SQLAlchemy
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(text)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ConfigError(
            f"{variable}: {redact_url(text)!r} is not a database URL like "
            "postgresql://user:password@host/takedown"
        ) from None
    return text


def _retention(text: str | None, variable: str) -> float | None:
    return None if text is None else parse_retention(text, variable)


def _metrics_address(text: str | None, variable: str) -> tuple[str, int] | None:
    """Parse TAKEDOWN_METRICS_PORT: PORT (on 127.0.0.1) or HOST:PORT, e.g. 0.0.0.0:9464."""
    if text is None:
        return None
    host, _, port_text = text.strip().rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        host = ""
    port = _whole(port_text)
    if not host or port is None or not 0 < port < 65536:
        raise ConfigError(f"{variable}: {text!r} is not a port (1-65535) or an IP address:port")
    return host, port


LOG_FORMATS = ("text", "json")


def _log_format(text: str | None, variable: str) -> str:
    value = (text or "text").strip().lower()
    if value not in LOG_FORMATS:
        raise ConfigError(f"{variable}: {text!r}: expected text or json")
    return value


def _proxies(text: str | None, variable: str) -> tuple[str, ...]:
    """Return the fetch proxies of a comma list: each a vantage re-checks rotate between."""
    found: list[str] = []
    for item in (part.strip() for part in (text or "").split(",")):
        if not item:
            continue
        parts = _urlsplit(item)
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            shown = redact_url(item)
            raise ConfigError(f"{variable}: {shown!r} is not an http(s) proxy URL")
        if item not in found:
            found.append(item)
    return tuple(found)


def _user_agent(text: str | None, variable: str) -> str | None:
    """Return a User-Agent for re-checks: one printable line."""
    if text is not None and not text.strip().isprintable():
        raise ConfigError(f"{variable}: must be one line of printable text")
    return None if text is None else text.strip()


def _cidrs(text: str, variable: str) -> tuple[str, ...]:
    found = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            found.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ConfigError(f"{variable}: {item!r} is not a CIDR") from None
    return tuple(found)


def _sender(text: str | None, variable: str) -> str | None:
    # The same check as every address in our files: a sender the notices would refuse to
    # put in a From header must stop start-up, not fail every notice later.
    if text is not None and (problem := email_problem(text)) is not None:
        raise ConfigError(f"{variable}: {text!r} {problem}")
    return text


VERP_TOKEN = "{token}"


def _return_path(text: str | None, variable: str) -> str | None:
    """Check TAKEDOWN_RETURN_PATH: an address with one {token} in its local part."""
    if text is None:
        return None
    local, at, _domain = text.rpartition("@")
    if text.count(VERP_TOKEN) != 1 or not at or VERP_TOKEN not in local:
        raise ConfigError(
            f"{variable}: {text!r} needs one {VERP_TOKEN} before the @, "
            "like bounces+{token}@hotline.example"
        )
    sample = text.replace(VERP_TOKEN, "0123456789abcdef0123")
    if (problem := email_problem(sample)) is not None:
        raise ConfigError(f"{variable}: {text!r} {problem}")
    return text


def _positive_int(text: str, variable: str) -> int:
    number = _whole(text)
    if number is None or number < 1:
        raise ConfigError(f"{variable}: {text!r} is not a positive whole number")
    return number


def _as_is(text: str | None, variable: str) -> str | None:
    return text


def _seconds(text: str, variable: str) -> float:
    value = parse_duration(text, what=variable)
    if value <= 0:
        raise ConfigError(f"{variable}: must be more than zero")
    return value


# A check takes a variable's text (None only for a variable without a default) and name,
# and returns the value or raises ConfigError naming the variable.
Check = Callable[[Any, str], object]


class _Variable(NamedTuple):
    name: str  # TAKEDOWN_<NAME>
    default: str | None
    check: Check


# Settings' fields in order: the variable each is read from, its default and its check.
_FIELDS: dict[str, _Variable] = {
    "home": _Variable(PREFIX + "HOME", None, _path),
    "country": _Variable(PREFIX + "COUNTRY", "GB", _country),
    "dns_servers": _Variable(PREFIX + "DNS_SERVERS", "", lambda text, _: parse_dns_servers(text)),
    "dns_timeout": _Variable(PREFIX + "DNS_TIMEOUT", "5s", _seconds),
    "rdap_base": _Variable(PREFIX + "RDAP_BASE", None, _rdap_base),
    "rdap_timeout": _Variable(PREFIX + "RDAP_TIMEOUT", "10s", _seconds),
    "rdap_rate": _Variable(PREFIX + "RDAP_RATE", "5", _rate),
    "rdap_max_wait": _Variable(
        PREFIX + "RDAP_MAX_WAIT", "5s", lambda text, v: parse_duration(text, what=v)
    ),
    "rdap_cache_ttl": _Variable(PREFIX + "RDAP_CACHE_TTL", "24h", _seconds),
    "hotlines": _Variable(PREFIX + "HOTLINES", None, _existing_file),
    "cdns": _Variable(PREFIX + "CDNS", None, _existing_file),
    "forms": _Variable(PREFIX + "FORMS", None, _existing_file),
    "platforms": _Variable(PREFIX + "PLATFORMS", None, _existing_file),
    "placeholders": _Variable(PREFIX + "PLACEHOLDERS", None, _existing_file),
    "database_url": _Variable(PREFIX + "DATABASE_URL", None, _database_url),
    "redis_url": _Variable(PREFIX + "REDIS_URL", None, _redis_url),
    "smtp_url": _Variable(PREFIX + "SMTP_URL", "smtp://localhost:25", _as_is),
    "smtp_password": _Variable(PREFIX + "SMTP_PASSWORD", None, _as_is),
    "sender": _Variable(PREFIX + "SENDER", None, _sender),
    "sender_name": _Variable(PREFIX + "SENDER_NAME", "takedown", _as_is),
    "return_path": _Variable(PREFIX + "RETURN_PATH", None, _return_path),
    "imap_url": _Variable(PREFIX + "IMAP_URL", None, _as_is),
    "imap_password": _Variable(PREFIX + "IMAP_PASSWORD", None, _as_is),
    "policy": _Variable(PREFIX + "POLICY", None, _existing_file),
    "templates": _Variable(PREFIX + "TEMPLATES", None, _existing_dir),
    "fetch_proxies": _Variable(PREFIX + "FETCH_PROXY", None, _proxies),
    "fetch_user_agent": _Variable(PREFIX + "FETCH_USER_AGENT", None, _user_agent),
    "fetch_allow": _Variable(PREFIX + "FETCH_ALLOW", "", _cidrs),
    "trusted_proxies": _Variable(PREFIX + "TRUSTED_PROXIES", "", _cidrs),
    "fetch_deadline": _Variable(PREFIX + "FETCH_DEADLINE", "30s", _seconds),
    "fetch_max_bytes": _Variable(PREFIX + "FETCH_MAX_BYTES", "16777216", _positive_int),
    "fetch_per_host": _Variable(PREFIX + "FETCH_PER_HOST", "4", _positive_int),
    "fetch_parallel": _Variable(PREFIX + "FETCH_PARALLEL", "200", _positive_int),
    "concurrency": _Variable(PREFIX + "CONCURRENCY", "2", _positive_int),
    "queues": _Variable(PREFIX + "QUEUES", "", lambda text, _: parse_queues(text)),
    "claim_lease": _Variable(PREFIX + "CLAIM_LEASE", "150s", _seconds),
    "sweep_lease": _Variable(PREFIX + "SWEEP_LEASE", "30s", _seconds),
    "retention": _Variable(PREFIX + "RETENTION", None, _retention),
    "metrics_address": _Variable(PREFIX + "METRICS_PORT", None, _metrics_address),
    "log_format": _Variable(PREFIX + "LOG_FORMAT", None, _log_format),
}
_SECRET_FIELDS = frozenset(
    field for field, spec in _FIELDS.items() if spec.name.removeprefix(PREFIX) in SECRETS
)
