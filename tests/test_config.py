"""Configuration: every variable validated at start-up, named in the error."""

from __future__ import annotations

import dataclasses
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic_settings import BaseSettings
from test_cli_cases import run

from workflows.config import settings as config
from workflows.config.secrets import SECRETS
from workflows.config.settings import Settings, load_settings, parse_dns_servers
from workflows.core.durations import format_duration, parse_duration
from workflows.errors import ConfigError
from workflows.trace.asn import origin_query_name, parse_as_name, parse_origin


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings({"XDG_DATA_HOME": str(tmp_path)})
    assert settings.country == "GB"
    assert settings.dns_servers == ()
    assert settings.rdap_base is None
    assert settings.home == tmp_path / "takedown"
    assert settings.rdap_cache_ttl == 86400


@pytest.mark.parametrize(
    ("text", "servers"),
    [
        ("127.0.0.1", (("127.0.0.1", 53),)),
        ("127.0.0.1:5353, 10.0.0.2", (("127.0.0.1", 5353), ("10.0.0.2", 53))),
        ("[::1]:5353", (("::1", 5353),)),
        ("::1", (("::1", 53),)),
        ("", ()),
    ],
)
def test_dns_servers(text: str, servers: tuple[tuple[str, int], ...]) -> None:
    assert parse_dns_servers(text) == servers


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TAKEDOWN_DNS_SERVERS", "dns.google", "not an IP address"),
        ("TAKEDOWN_DNS_SERVERS", "127.0.0.1:99999", "bad port"),
        ("TAKEDOWN_COUNTRY", "United Kingdom", "ISO 3166"),
        ("TAKEDOWN_COUNTRY", "UK", 'use "GB" for the United Kingdom'),  # routed GB as foreign
        ("TAKEDOWN_COUNTRY", "XX", "ISO 3166"),
        ("TAKEDOWN_COUNTRY", "EL", 'use "GR"'),
        ("TAKEDOWN_RDAP_BASE", "ftp://x", "not an http(s) URL"),
        ("TAKEDOWN_RDAP_RATE", "-1", "positive number"),
        ("TAKEDOWN_RDAP_RATE", "nan", "positive number"),
        ("TAKEDOWN_RDAP_RATE", "inf", "positive number"),
        ("TAKEDOWN_DNS_TIMEOUT", "soon", "not a duration"),
        ("TAKEDOWN_DNS_TIMEOUT", "0s", "more than zero"),
        ("TAKEDOWN_HOTLINES", "/nonexistent/hotlines.toml", "no such file"),
        ("TAKEDOWN_SENDER", "reports", 'exactly one "@"'),
        ("TAKEDOWN_SENDER", "a,b@hotline.example", 'characters not allowed before the "@"'),
        ("TAKEDOWN_FETCH_PROXY", "http://a.example:3128,socks5://b:1080", "not an http(s)"),
        ("TAKEDOWN_FETCH_USER_AGENT", "Mozilla/5.0\r\nX-Evil: 1", "one line"),
        ("TAKEDOWN_SWEEP_LEASE", "0s", "more than zero"),
    ],
)
def test_bad_variables_are_named(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({variable: value})
    assert variable in str(caught.value) and message in str(caught.value)


def test_fetch_proxies_are_vantages_and_the_user_agent_can_be_set() -> None:
    settings = load_settings(
        {
            "TAKEDOWN_FETCH_PROXY": " http://a.example:3128 , http://b.example:3128,",
            "TAKEDOWN_FETCH_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
            "TAKEDOWN_SWEEP_LEASE": "10s",
        }
    )
    assert settings.fetch_proxies == ("http://a.example:3128", "http://b.example:3128")
    assert settings.fetch_user_agent == "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"
    assert settings.sweep_lease == 10
    defaults = load_settings({})
    assert (defaults.fetch_proxies, defaults.fetch_user_agent) == ((), None)
    assert defaults.sweep_lease == 30


def test_config_file_sets_variables_and_environment_wins(tmp_path: Path) -> None:
    config = tmp_path / "takedown.toml"
    config.write_text('country = "de"\nTAKEDOWN_RDAP_RATE = 2\n', encoding="utf-8")
    settings = load_settings({"TAKEDOWN_CONFIG": str(config)})
    assert (settings.country, settings.rdap_rate) == ("DE", 2.0)
    assert load_settings({"TAKEDOWN_CONFIG": str(config), "TAKEDOWN_COUNTRY": "FR"}).country == "FR"
    assert load_settings({"TAKEDOWN_COUNTRY": " gb "}).country == "GB"


def test_bad_config_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "takedown.toml"
    config.write_text("country = \n", encoding="utf-8")
    with pytest.raises(ConfigError, match="TAKEDOWN_CONFIG"):
        load_settings({"TAKEDOWN_CONFIG": str(config)})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("15m", 900),
        ("24h", 86400),
        ("3d", 259200),
        ("2", 2),
        ("1.5s", 1.5),
        ("250ms", 0.25),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "shown"), [("30s", "30s"), ("90m", "90m"), ("24h", "1d"), ("1.5s", "1.5s")]
)
def test_format_duration_uses_the_largest_exact_unit(text: str, shown: str) -> None:
    assert format_duration(parse_duration(text)) == shown
    assert parse_duration(shown) == parse_duration(text)


@pytest.mark.parametrize(
    ("address", "name"),
    [
        ("185.199.108.10", "10.108.199.185.origin.asn.cymru.com"),
        (
            "2a00:1450::1",
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.5.4.1.0.0.a.2.origin6.asn.cymru.com",
        ),
    ],
)
def test_origin_query_name(address: str, name: str) -> None:
    assert origin_query_name(address) == name


def test_parse_origin_multi_origin_and_as_name() -> None:
    origin = parse_origin('"20738 20773 | 185.199.108.0/22 | gb | ripencc | 2014-03-28"')
    assert origin is not None
    assert (origin.asn, origin.asns, origin.prefix, origin.country, origin.registry) == (
        20738,
        (20738, 20773),
        "185.199.108.0/22",
        "GB",
        "ripencc",
    )
    assert parse_origin("garbage") is None
    assert (
        parse_as_name("13335 | US | arin | 2010-07-14 | CLOUDFLARENET - Cloudflare, Inc., US")
        == "CLOUDFLARENET - Cloudflare, Inc., US"
    )


# --- secrets from files (TAKEDOWN_<NAME>_FILE) ------------------------------------------

SECRET = "Pa55-w0rd-in-a-file"
SECRET_VALUES = [
    ("DATABASE_URL", f"postgresql://takedown:{SECRET}@db.example/takedown", "database_url"),
    ("REDIS_URL", f"redis://:{SECRET}@redis.example:6379/0", "redis_url"),
    ("SMTP_URL", f"smtp://hotline:{SECRET}@mail.example:587?starttls=1", "smtp_url"),
    ("SMTP_PASSWORD", SECRET, "smtp_password"),
    ("IMAP_URL", f"imaps://hotline:{SECRET}@mail.example/INBOX", "imap_url"),
    ("IMAP_PASSWORD", SECRET, "imap_password"),
    ("FETCH_PROXY", f"http://vantage:{SECRET}@proxy.example:3128", "fetch_proxies"),
]


@pytest.mark.parametrize(
    ("name", "value", "field"), SECRET_VALUES, ids=[s[0] for s in SECRET_VALUES]
)
def test_every_secret_may_come_from_a_file(
    tmp_path: Path, name: str, value: str, field: str
) -> None:
    secret = tmp_path / "secret"
    secret.write_text(f"  {value}\n", encoding="utf-8")  # as `echo` and editors leave it
    from_file = getattr(load_settings({f"TAKEDOWN_{name}_FILE": str(secret)}), field)
    from_variable = getattr(load_settings({f"TAKEDOWN_{name}": value}), field)
    assert from_file == from_variable
    assert value in (from_file if isinstance(from_file, tuple) else (from_file,))


@pytest.mark.parametrize("name", [s[0] for s in SECRET_VALUES])
def test_a_secret_set_both_ways_is_refused_naming_both(tmp_path: Path, name: str) -> None:
    secret = tmp_path / "secret"
    secret.write_text(SECRET, encoding="utf-8")
    variable = f"TAKEDOWN_{name}"
    with pytest.raises(ConfigError) as caught:
        load_settings({variable: SECRET, variable + "_FILE": str(secret)})
    message = str(caught.value)
    assert f"{variable} and {variable}_FILE are both set" in message
    assert SECRET not in message


def unusable_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Make a file of each unusable kind; return them with the words that must explain it."""
    made = {
        "empty": ("\n  \n", "is empty"),
        "two-lines": (f"{SECRET}\nsecond-line-{SECRET}\n", "more than one line"),
        "not-utf8": (b"\xff\xfe" + SECRET.encode(), "not UTF-8"),
        "huge": (SECRET * 10_000, "larger than"),
    }
    found: dict[str, tuple[Path, str]] = {}
    for kind, (content, words) in made.items():
        path = tmp_path / kind
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        found[kind] = (path, words)
    found["missing"] = (tmp_path / "nonexistent", "cannot read")
    found["folder"] = (tmp_path, "cannot read")
    return found


@pytest.mark.parametrize("kind", ["empty", "two-lines", "not-utf8", "huge", "missing", "folder"])
@pytest.mark.parametrize("name", ["DATABASE_URL", "REDIS_URL", "SMTP_PASSWORD", "IMAP_URL"])
def test_an_unusable_secret_file_is_named_without_its_content(
    tmp_path: Path, name: str, kind: str
) -> None:
    path, words = unusable_files(tmp_path)[kind]
    variable = f"TAKEDOWN_{name}_FILE"
    with pytest.raises(ConfigError) as caught:
        load_settings({variable: str(path)})
    message = str(caught.value)
    assert message.startswith(f"{variable}: ") and words in message and str(path) in message
    assert SECRET not in message and len(message.splitlines()) == 1


def test_a_bad_url_from_a_file_is_named_by_the_file_variable_and_redacted(tmp_path: Path) -> None:
    secret = tmp_path / "database-url"
    secret.write_text(f"takedown:{SECRET}@db.example/takedown\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings({"TAKEDOWN_DATABASE_URL_FILE": str(secret)})
    assert str(caught.value).startswith("TAKEDOWN_DATABASE_URL_FILE: ")
    assert "not a database URL" in str(caught.value) and SECRET not in str(caught.value)


def test_the_environment_decides_a_secret_over_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "takedown.toml"
    config.write_text('smtp_password = "from-the-config-file"\n', encoding="utf-8")
    secret = tmp_path / "smtp-password"
    secret.write_text(SECRET, encoding="utf-8")
    both = {"TAKEDOWN_CONFIG": str(config), "TAKEDOWN_SMTP_PASSWORD_FILE": str(secret)}
    assert load_settings(both).smtp_password == SECRET  # not "both set": two levels
    assert load_settings({"TAKEDOWN_CONFIG": str(config)}).smtp_password == "from-the-config-file"
    # An empty variable in the environment unsets the file's, as for every variable.
    cleared = {"TAKEDOWN_CONFIG": str(config), "TAKEDOWN_SMTP_PASSWORD": ""}
    assert load_settings(cleared).smtp_password is None
    config.write_text(f'smtp_password = "x"\nsmtp_password_file = "{secret}"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="TAKEDOWN_SMTP_PASSWORD and TAKEDOWN_SMTP_PASSWORD_FILE"):
        load_settings({"TAKEDOWN_CONFIG": str(config)})


@pytest.mark.parametrize(
    ("variable", "file_kind", "words"),
    [
        ("TAKEDOWN_REDIS_URL_FILE", "missing", "cannot read"),
        ("TAKEDOWN_DATABASE_URL_FILE", "empty", "is empty"),
        ("TAKEDOWN_IMAP_PASSWORD_FILE", "two-lines", "more than one line"),
    ],
)
def test_a_command_stops_at_an_unusable_secret_file_with_one_line(
    takedown_command: list[str], tmp_path: Path, variable: str, file_kind: str, words: str
) -> None:
    home = tmp_path / "home"
    path, _ = unusable_files(tmp_path)[file_kind]
    env = {variable: str(path), "TAKEDOWN_SENDER": "reports@hotline.example"}
    done = run(takedown_command, home, "worker", **env)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and variable in done.stderr and words in done.stderr
    assert SECRET not in done.stderr + done.stdout
    assert not (home / "takedown.db").exists()


# --- pydantic-settings validates; its errors never reach the user -----------------------


def test_load_settings_validates_with_a_pydantic_settings_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = config.settings_model()
    assert issubclass(model, BaseSettings)
    assert list(model.model_fields) == [field.name for field in dataclasses.fields(Settings)]
    assert list(config._FIELDS) == list(model.model_fields)  # a check for every field
    assert model.model_config.get("hide_input_in_errors") and model.model_config.get("frozen")
    validated: list[BaseSettings] = []

    class Spy(model):
        def model_post_init(self, context: object) -> None:
            validated.append(self)

    monkeypatch.setattr(config, "settings_model", lambda: Spy)
    loaded = load_settings({"TAKEDOWN_COUNTRY": " de ", "TAKEDOWN_FETCH_PROXY": "http://p:1"})
    [checked] = validated
    assert (checked.country, checked.fetch_proxies) == ("DE", ("http://p:1",))
    assert (loaded.country, loaded.fetch_proxies) == ("DE", ("http://p:1",))
    assert dataclasses.replace(loaded, country="FR").country == "FR"  # still a dataclass


def test_only_the_mapping_given_and_upper_case_names_count(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TAKEDOWN_COUNTRY", "FR")
    monkeypatch.chdir(tmp_path)  # a .env file is not read either
    (tmp_path / ".env").write_text("TAKEDOWN_COUNTRY=IT\ncountry=IT\n", encoding="utf-8")
    assert load_settings({}).country == "GB"
    assert load_settings({"takedown_country": "FR", "Takedown_Country": "FR"}).country == "GB"


def test_a_validation_error_becomes_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A check that returns the wrong type (a bug) meets pydantic's own type check.
    for field in ("fetch_max_bytes", "database_url"):
        spec = config._FIELDS[field]
        wrong = spec._replace(check=lambda text, _: None if text is None else ["x"])
        monkeypatch.setitem(config._FIELDS, field, wrong)
    with pytest.raises(ConfigError) as caught:
        load_settings({"TAKEDOWN_FETCH_MAX_BYTES": "5"})
    assert str(caught.value) == "TAKEDOWN_FETCH_MAX_BYTES: Input should be a valid integer"
    secret = tmp_path / "database-url"
    secret.write_text(f"postgresql://takedown:{SECRET}@db/takedown", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings({"TAKEDOWN_DATABASE_URL_FILE": str(secret)})
    assert str(caught.value) == "TAKEDOWN_DATABASE_URL_FILE: is not a usable value"


def test_a_line_break_in_a_value_is_shown_escaped() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"TAKEDOWN_HOTLINES": "/nonexistent/a\nb.toml"})
    assert str(caught.value) == "TAKEDOWN_HOTLINES: no such file: /nonexistent/a\\nb.toml"


ENV_EXAMPLE = Path(__file__).parent.parent / ".env.example"  # lists every variable
VARIABLES = sorted(
    set(re.findall(r"^#? ?(TAKEDOWN_[A-Z0-9_]+)=", ENV_EXAMPLE.read_text("utf-8"), re.MULTILINE))
)
FUZZ_DIR = Path(tempfile.mkdtemp(prefix="takedown-config-fuzz-"))
# Any characters (NUL, line breaks, digits of other scripts), or an awkward start.
EDGES = ["~no-such-user/", "http://[", "redis://[::1", "²", "٣", "9" * 5000, "-1", "0", "\n"]
JUNK = st.one_of(
    st.text(max_size=30),
    st.builds(lambda edge, text: edge + text, st.sampled_from(EDGES), st.text(max_size=10)),
)
SECRET_URLS = st.builds(
    lambda scheme, user, rest: f"{scheme}://{user}:{SECRET}@{rest}",
    st.one_of(st.sampled_from(["redis", "postgresql", "http", "smtp", "imaps", ""]), JUNK),
    st.text(st.characters(exclude_characters=":@"), max_size=8),
    JUNK,
)


@st.composite
def junk_environments(draw: st.DrawFn) -> dict[str, str]:
    """Draw a few variables with junk; a secret's value (or file) holds SECRET."""
    env = {}
    for variable in draw(st.lists(st.sampled_from(VARIABLES), min_size=1, max_size=4)):
        name = variable.removeprefix("TAKEDOWN_").removesuffix("_FILE")
        if name not in SECRETS:
            value = draw(JUNK)
        elif name.endswith("PASSWORD"):
            value = SECRET + draw(JUNK)
        else:
            value = draw(st.one_of(SECRET_URLS, JUNK))
        if variable.endswith("_FILE") or variable == "TAKEDOWN_CONFIG":
            path = FUZZ_DIR / variable
            path.write_bytes(value.encode("utf-8", "surrogatepass"))
            value = draw(st.one_of(st.just(str(path)), JUNK))
        env[variable] = value
    return env


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(env=junk_environments())
def test_junk_in_any_variable_is_taken_or_refused_in_one_line_without_the_secret(
    env: dict[str, str],
) -> None:
    try:
        load_settings({"XDG_DATA_HOME": str(FUZZ_DIR), **env})
    except ConfigError as error:  # anything else (a ValidationError) fails the test
        message = str(error)
        assert len(message.splitlines()) == 1 and "\n" not in message
        variable = message.partition(": ")[0].partition(" and ")[0]
        assert variable in env, message
        assert SECRET not in message
