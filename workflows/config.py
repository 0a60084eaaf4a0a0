"""Read takedown's configuration from the environment (and an optional TOML file).

Every variable is validated once, at start-up; a bad value raises ConfigError naming the
variable, so the CLI can exit 2 with one line before anything is changed.
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

from workflows.durations import parse_duration
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


def default_home(environ: Mapping[str, str]) -> Path:
    """Return the per-user data directory (XDG base directory specification)."""
    base = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "takedown"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from ENVIRON (default: os.environ) and TAKEDOWN_CONFIG, if set."""
    env = dict(os.environ if environ is None else environ)
    values = {**_file_values(env.get(PREFIX + "CONFIG")), **env}

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
    )


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
    code = text.strip().upper()
    if not _COUNTRY.match(code):
        raise ConfigError(f"{PREFIX}COUNTRY: {text!r} is not an ISO 3166 alpha-2 code like GB")
    return code


def _rdap_base(text: str | None) -> str | None:
    if text is None:
        return None
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{PREFIX}RDAP_BASE: {text!r} is not an http(s) URL")
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
