"""Read takedown's configuration from the environment (and an optional TOML file).

Every variable is validated once, at start-up; a bad value raises ConfigError naming the
variable, so the CLI can exit 2 with one line before anything is changed. A variable that
may hold a password may name a file holding it instead (TAKEDOWN_<NAME>_FILE, secrets.py);
messages show such values with the password replaced (redact_url), never whole.

Hand-written, not pydantic-settings (weighed for issue 13): that package is not installed
(FastAPI does not depend on it); its ValidationError runs to several lines, names the
field rather than the variable and quotes the input (a password in a URL); it reads
os.environ, not the mapping that tests, `takedown up` and the demo pass; it knows no
NAME_FILE (only a secrets folder with one file per field) and takes lower-case names too.
Keeping every message here would mean a validator of our own per field anyway.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from workflows.config.secrets import read_secrets
from workflows.config.tomlfile import country_problem
from workflows.core.durations import parse_duration
from workflows.core.emails import email_problem
from workflows.errors import ConfigError

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
    from_file = _file_values(env.get(PREFIX + "CONFIG"))
    values = {**from_file, **env}
    secrets = read_secrets(from_file, env)

    def get(name: str) -> str | None:
        value = values.get(PREFIX + name)
        return value if value not in (None, "") else None

    def seconds(name: str, default: str) -> float:
        value = parse_duration(get(name) or default, what=PREFIX + name)
        if value <= 0:
            raise ConfigError(f"{PREFIX}{name}: must be more than zero")
        return value

    return Settings(
        home=Path(get("HOME") or default_home(env)).expanduser(),
        country=_country(get("COUNTRY") or "GB"),
        dns_servers=parse_dns_servers(get("DNS_SERVERS") or ""),
        dns_timeout=seconds("DNS_TIMEOUT", "5s"),
        rdap_base=_rdap_base(get("RDAP_BASE")),
        rdap_timeout=seconds("RDAP_TIMEOUT", "10s"),
        rdap_rate=_rate(get("RDAP_RATE") or "5"),
        rdap_max_wait=parse_duration(get("RDAP_MAX_WAIT") or "5s", what=PREFIX + "RDAP_MAX_WAIT"),
        rdap_cache_ttl=seconds("RDAP_CACHE_TTL", "24h"),
        hotlines=_existing_file(get("HOTLINES"), "HOTLINES"),
        cdns=_existing_file(get("CDNS"), "CDNS"),
        forms=_existing_file(get("FORMS"), "FORMS"),
        platforms=_existing_file(get("PLATFORMS"), "PLATFORMS"),
        placeholders=_existing_file(get("PLACEHOLDERS"), "PLACEHOLDERS"),
        database_url=_database_url(secrets["DATABASE_URL"].value, secrets["DATABASE_URL"].variable),
        redis_url=_redis_url(secrets["REDIS_URL"].value, secrets["REDIS_URL"].variable),
        smtp_url=secrets["SMTP_URL"].value or "smtp://localhost:25",
        smtp_password=secrets["SMTP_PASSWORD"].value,
        sender=_sender(get("SENDER")),
        sender_name=get("SENDER_NAME") or "takedown",
        return_path=_return_path(get("RETURN_PATH")),
        imap_url=secrets["IMAP_URL"].value,
        imap_password=secrets["IMAP_PASSWORD"].value,
        policy=_existing_file(get("POLICY"), "POLICY"),
        templates=_existing_dir(get("TEMPLATES"), "TEMPLATES"),
        fetch_proxies=_proxies(secrets["FETCH_PROXY"].value, secrets["FETCH_PROXY"].variable),
        fetch_user_agent=_user_agent(get("FETCH_USER_AGENT")),
        fetch_allow=_cidrs(get("FETCH_ALLOW") or ""),
        trusted_proxies=_cidrs(get("TRUSTED_PROXIES") or "", "TRUSTED_PROXIES"),
        fetch_deadline=seconds("FETCH_DEADLINE", "30s"),
        fetch_max_bytes=_positive_int(get("FETCH_MAX_BYTES") or "16777216", "FETCH_MAX_BYTES"),
        fetch_per_host=_positive_int(get("FETCH_PER_HOST") or "4", "FETCH_PER_HOST"),
        fetch_parallel=_positive_int(get("FETCH_PARALLEL") or "200", "FETCH_PARALLEL"),
        concurrency=_positive_int(get("CONCURRENCY") or "2", "CONCURRENCY"),
        queues=parse_queues(get("QUEUES") or ""),
        claim_lease=seconds("CLAIM_LEASE", "150s"),
        sweep_lease=seconds("SWEEP_LEASE", "30s"),
        retention=_retention(get("RETENTION")),
        metrics_address=_metrics_address(get("METRICS_PORT")),
        log_format=_log_format(get("LOG_FORMAT")),
    )


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
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ConfigError(f"{PREFIX}DNS_SERVERS: bad port in {item!r}")
    return int(text)


def _country(text: str) -> str:
    """Return the hotline's country: an assigned ISO 3166-1 alpha-2 code (UK and XX are
    not: they would route every domestic host as foreign)."""
    code = text.strip().upper()
    problem = country_problem(code) if _COUNTRY.match(code) else None
    if not _COUNTRY.match(code) or problem is not None:
        problem = problem or 'must be an ISO 3166 alpha-2 code like "GB"'
        raise ConfigError(f"{PREFIX}COUNTRY: {text!r} {problem}")
    return code


def _rdap_base(text: str | None) -> str | None:
    if text is None:
        return None
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{PREFIX}RDAP_BASE: {redact_url(text)!r} is not an http(s) URL")
    return text.strip().rstrip("/")


def _rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        rate = 0.0
    if rate <= 0:
        raise ConfigError(f"{PREFIX}RDAP_RATE: {text!r} is not a positive number per second")
    return rate


def _existing_file(text: str | None, name: str) -> Path | None:
    if text is None:
        return None
    path = Path(text).expanduser()
    if not path.is_file():
        raise ConfigError(f"{PREFIX}{name}: no such file: {path}")
    return path


def _file_values(path_text: str | None) -> dict[str, str]:
    """Read TAKEDOWN_* variables from a TOML file; the environment wins over it."""
    if not path_text:
        return {}
    path = Path(path_text).expanduser()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{PREFIX}CONFIG: {path}: {error}") from None
    values = {}
    for key, value in data.items():
        name = key.upper() if key.upper().startswith(PREFIX) else PREFIX + key.upper()
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(f"{PREFIX}CONFIG: {path}: {key} must be a string or a number")
        values[name] = str(value)
    return values


def _existing_dir(text: str | None, name: str) -> Path | None:
    if text is None:
        return None
    path = Path(text).expanduser()
    if not path.is_dir():
        raise ConfigError(f"{PREFIX}{name}: no such folder: {path}")
    return path


def _redis_url(text: str | None, variable: str) -> str | None:
    if text is None:
        return None
    if urlsplit(text).scheme not in ("redis", "rediss", "redis+socket", "unix"):
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


def _retention(text: str | None) -> float | None:
    return None if text is None else parse_retention(text, PREFIX + "RETENTION")


def _metrics_address(text: str | None) -> tuple[str, int] | None:
    """Parse TAKEDOWN_METRICS_PORT: PORT (on 127.0.0.1) or HOST:PORT, e.g. 0.0.0.0:9464."""
    if text is None:
        return None
    host, _, port = text.strip().rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        host = ""
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"{PREFIX}METRICS_PORT: {text!r} is not a port (1-65535) or an IP address:port"
        )
    return host, int(port)


LOG_FORMATS = ("text", "json")


def _log_format(text: str | None) -> str:
    value = (text or "text").strip().lower()
    if value not in LOG_FORMATS:
        raise ConfigError(f"{PREFIX}LOG_FORMAT: {text!r}: expected text or json")
    return value


def _proxies(text: str | None, variable: str) -> tuple[str, ...]:
    """Return the fetch proxies of a comma list: each a vantage re-checks rotate between."""
    found: list[str] = []
    for item in (part.strip() for part in (text or "").split(",")):
        if not item:
            continue
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            shown = redact_url(item)
            raise ConfigError(f"{variable}: {shown!r} is not an http(s) proxy URL")
        if item not in found:
            found.append(item)
    return tuple(found)


def _user_agent(text: str | None) -> str | None:
    """Return a User-Agent for re-checks: one printable line."""
    if text is not None and not text.strip().isprintable():
        raise ConfigError(f"{PREFIX}FETCH_USER_AGENT: must be one line of printable text")
    return None if text is None else text.strip()


def _cidrs(text: str, name: str = "FETCH_ALLOW") -> tuple[str, ...]:
    found = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            found.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ConfigError(f"{PREFIX}{name}: {item!r} is not a CIDR") from None
    return tuple(found)


def _sender(text: str | None) -> str | None:
    # The same check as every address in our files: a sender the notices would refuse to
    # put in a From header must stop start-up, not fail every notice later.
    if text is not None and (problem := email_problem(text)) is not None:
        raise ConfigError(f"{PREFIX}SENDER: {text!r} {problem}")
    return text


VERP_TOKEN = "{token}"


def _return_path(text: str | None) -> str | None:
    """Check TAKEDOWN_RETURN_PATH: an address with one {token} in its local part."""
    if text is None:
        return None
    local, at, _domain = text.rpartition("@")
    if text.count(VERP_TOKEN) != 1 or not at or VERP_TOKEN not in local:
        raise ConfigError(
            f"{PREFIX}RETURN_PATH: {text!r} needs one {VERP_TOKEN} before the @, "
            "like bounces+{token}@hotline.example"
        )
    sample = text.replace(VERP_TOKEN, "0123456789abcdef0123")
    if (problem := email_problem(sample)) is not None:
        raise ConfigError(f"{PREFIX}RETURN_PATH: {text!r} {problem}")
    return text


def _positive_int(text: str, name: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{PREFIX}{name}: {text!r} is not a positive whole number")
    return int(text)
