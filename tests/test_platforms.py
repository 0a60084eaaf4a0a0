"""Platform rules: the file's validation names the line, matching by host name suffix, and a
trace through the simulated internet that sends a platform's URL to the platform."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from workflows.config.forms import is_form_address
from workflows.config.platforms import Platform, PlatformDirectory, load_platforms
from workflows.config.settings import load_settings
from workflows.core.urls import normalize_url
from workflows.engine.tracing import routing_of
from workflows.errors import ConfigError
from workflows.sim import Network, SimInternet, World
from workflows.trace.tracer import Tracer


def write(directory: Path, text: str, name: str = "platforms.toml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def entry(*lines: str) -> str:
    """Return a file with one [platform.example] table holding these lines."""
    return "\n".join(("# platforms", "[platform.example]", 'name = "Example"', *lines)) + "\n"


HOSTS = 'hosts = ["blogs.test"]'
MAIL = 'abuse = ["abuse@blogs.test"]'

BAD_FILES = [
    pytest.param(entry(HOSTS, "abuse = [1,"), 5, "TOML syntax", id="syntax"),
    pytest.param("platforms = 1\n", 1, 'unknown top-level key "platforms"', id="top-level-key"),
    pytest.param("[platform.Blogs]\nname = 'x'\n", 1, "lowercase letters", id="key-case"),
    pytest.param("[platform.a]\nhosts = ['a.test']\n", 1, "name is required", id="name-missing"),
    pytest.param(entry(HOSTS, MAIL, "url = 1"), 6, 'unknown key "url"', id="unknown-key"),
    pytest.param(entry(MAIL), 2, "hosts needs at least one host name", id="no-hosts"),
    pytest.param(entry('hosts = ["192.0.2.1"]', MAIL), 4, 'hosts: "192.0.2.1"', id="ip-host"),
    pytest.param(entry('hosts = ["test"]', MAIL), 4, 'hosts: "test"', id="top-level-domain"),
    pytest.param(entry('hosts = ["a b.test"]', MAIL), 4, 'hosts: "a b.test"', id="space"),
    pytest.param(entry(HOSTS), 2, "needs exactly one desk", id="no-desk"),
    pytest.param(
        entry(HOSTS, MAIL, 'form = "https://blogs.test/report"'), 2, "exactly one desk", id="both"
    ),
    pytest.param(entry(HOSTS, 'abuse = ["no-at-sign"]'), 5, 'abuse: "no-at-sign"', id="bad-mail"),
    pytest.param(
        entry(HOSTS, 'form = "http://blogs.test/report"'), 5, "must be an https URL", id="http-form"
    ),
    pytest.param(
        entry(HOSTS, 'form = "https://blogs.test/a,b"'), 5, "without commas", id="comma-form"
    ),
    pytest.param(
        entry(HOSTS, MAIL, 'source = "blogs.test"'), 6, 'source "blogs.test"', id="source"
    ),
    pytest.param(
        entry(HOSTS, MAIL) + '\n[platform.other]\nname = "O"\nhosts = ["BLOGS.test"]\n' + MAIL,
        9,
        '"blogs.test" is listed under both [platform.example]',
        id="host-twice",
    ),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD_FILES)
def test_a_bad_file_names_its_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_platforms(path)
    assert str(caught.value).startswith(f"{path}:{line}:"), caught.value
    assert message in str(caught.value)


def test_the_shipped_rules_load_and_each_says_where_it_was_verified() -> None:
    directory = load_platforms()
    assert len(directory) >= 5
    for platform in directory:
        assert platform.source is not None and platform.source.startswith("https://")
        assert platform.desk and (platform.form is None or is_form_address(platform.form))


def test_a_bad_platforms_variable_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TAKEDOWN_PLATFORMS"):
        load_settings({"TAKEDOWN_PLATFORMS": str(tmp_path / "missing.toml")})
    with pytest.raises(ConfigError, match="TAKEDOWN_PLACEHOLDERS"):
        load_settings({"TAKEDOWN_PLACEHOLDERS": str(tmp_path / "missing.toml")})


DIRECTORY = PlatformDirectory(
    [
        Platform("blogs", "Blogs", ("blogs.test",), abuse=("abuse@blogs.test",)),
        Platform("files", "Files", ("files.test", "dl.cdn.test"), form="https://files.test/r"),
        Platform("special", "Special blog", ("vip.blogs.test",), abuse=("vip@blogs.test",)),
    ]
)


@pytest.mark.parametrize(
    ("host", "key"),
    [
        pytest.param("blogs.test", "blogs", id="the-domain-itself"),
        pytest.param("alice.blogs.test", "blogs", id="a-user-subdomain"),
        pytest.param("Alice.Blogs.Test.", "blogs", id="case-and-trailing-dot"),
        pytest.param("x.vip.blogs.test", "special", id="the-longest-rule-wins"),
        pytest.param("s3.dl.cdn.test", "files", id="a-download-domain"),
        pytest.param("cdn.test", None, id="not-the-parent-of-a-rule"),
        pytest.param("evilblogs.test", None, id="not-a-mere-suffix-of-the-string"),
        pytest.param("blogs.test.evil.test", None, id="not-a-prefix"),
        pytest.param("192.0.2.1", None, id="an-ipv4-literal"),
        pytest.param("2001:db8::1", None, id="an-ipv6-literal"),
        pytest.param("", None, id="empty"),
    ],
)
def test_a_rule_matches_its_host_and_names_below_it(host: str, key: str | None) -> None:
    found = DIRECTORY.match(host)
    assert (found.platform.key if found else None) == key


# -- through the simulated internet ----------------------------------------------------------

RULES = """\
[platform.blogs]
name = "Example Blogs"
hosts = ["blogs.test"]
abuse = ["abuse@blogs.test"]
source = "https://blogs.test/abuse"

[platform.files]
name = "Example Files"
hosts = ["files.test"]
form = "https://files.test/report"
"""


@pytest.fixture(scope="module")
def sim() -> Iterator[SimInternet]:
    world = World(
        networks=[
            Network(
                "185.199.108.0/22",
                201234,
                "CLOUD-NET",
                "GB",
                abuse=["abuse@cloud.example"],
                fallback=["noc@cloud.example"],
            )
        ],
        records={
            "alice.blogs.test": [("A", "185.199.108.10")],
            "dl3.files.test": [("A", "185.199.108.11")],
            "plain.cloud.test": [("A", "185.199.108.12")],
        },
    )
    with SimInternet(world) as running:
        yield running


@pytest.fixture
def env(sim: SimInternet, tmp_path: Path) -> dict[str, str]:
    return {
        **sim.env(),
        "TAKEDOWN_HOME": str(tmp_path / "home"),
        "TAKEDOWN_PLATFORMS": str(write(tmp_path, RULES)),
        "TAKEDOWN_COUNTRY": "GB",
        "PATH": "/usr/bin:/bin",
    }


@pytest.fixture
def tracer(env: dict[str, str]) -> Iterator[Tracer]:
    built = Tracer.from_settings(load_settings(env))
    yield built
    built.close()


def test_a_platform_url_is_noticed_to_the_platform_with_the_network_kept(tracer: Tracer) -> None:
    result = tracer.trace(normalize_url("https://alice.blogs.test/post/1.jpg"))
    assert (result.route, result.abuse, result.abuse_source) == (
        "host_notice",
        ["abuse@blogs.test"],
        "platform",
    )
    assert result.platform is not None
    assert (result.platform["key"], result.platform["matched"]) == ("blogs", "blogs.test")
    assert result.networks[0].abuse == ["abuse@cloud.example"]  # the network stays traced
    assert (result.network_abuse, result.network_abuse_source) == (
        ["abuse@cloud.example"],
        "role:abuse",
    )
    # After the platform's desk: the network's own contacts, then its other roles.
    assert result.fallback == ["abuse@cloud.example", "noc@cloud.example"]
    assert routing_of(result)["recipients"] == "abuse@blogs.test"  # the case's first notice


def test_a_platform_with_a_form_gets_a_form_task(tracer: Tracer) -> None:
    result = tracer.trace(normalize_url("http://dl3.files.test/f/9"))
    assert (result.abuse, result.abuse_source) == (["https://files.test/report"], "platform")
    assert is_form_address(routing_of(result)["recipients"])


def test_a_url_on_no_platform_goes_to_the_network(tracer: Tracer) -> None:
    result = tracer.trace(normalize_url("http://plain.cloud.test/"))
    assert (result.platform, result.abuse, result.abuse_source) == (
        None,
        ["abuse@cloud.example"],
        "role:abuse",
    )
    assert result.network_abuse == result.abuse


def run(command: list[str], env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_takedown_trace_shows_the_platform_the_network_and_who_gets_the_notice(
    takedown_command: list[str], env: dict[str, str]
) -> None:
    done = run(takedown_command, env, "trace", "https://alice.blogs.test/post/1.jpg")
    assert done.returncode == 0, done.stderr
    assert "Platform  Example Blogs (host under blogs.test): abuse@blogs.test" in done.stdout
    assert "Network   abuse@cloud.example  (from role:abuse: after the platform)" in done.stdout
    assert "Notice    the platform, Example Blogs" in done.stdout
    data: dict[str, Any] = json.loads(
        run(takedown_command, env, "trace", "--json", "https://alice.blogs.test/x").stdout
    )
    assert data["platform"]["name"] == "Example Blogs"
    assert (data["abuse_source"], data["network_abuse"]) == ("platform", ["abuse@cloud.example"])
