"""The CDN directory: validation that names the line, and matching by ASN and prefix."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflows.config.cdns import CDN, CDNDirectory, load_cdns
from workflows.core.emails import email_problem
from workflows.errors import ConfigError


def write(directory: Path, content: str | bytes, name: str = "cdns.toml") -> Path:
    """Write a file for a test and return its path."""
    path = directory / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


def entry(*lines: str) -> str:
    """Return a file with one [cdn.example] table holding these lines."""
    return "\n".join(("# CDNs", "[cdn.example]", 'name = "Example"', *lines)) + "\n"


TWO = '[cdn.one]\nname = "One"\nasns = [64500]\n\n[cdn.two]\nname = "Two"\n'

BAD_FILES = [
    pytest.param(entry("asns = [1,"), 4, "TOML syntax", id="syntax"),
    pytest.param("cdns = 1\n", 1, 'unknown top-level key "cdns"', id="top-level-key"),
    pytest.param("cdn = []\n", 1, "cdn must be a table", id="cdn-not-table"),
    pytest.param("[cdn.Cloudflare]\nasns = [1]\n", 1, "lowercase letters", id="key-case"),
    pytest.param("[cdn.a]\nasns = [1]\n", 1, "name is required", id="name-missing"),
    pytest.param(entry(), 2, "at least one AS number", id="no-asn-or-prefix"),
    pytest.param(entry("asns = 13335"), 4, "asns must be an array", id="asns-not-array"),
    pytest.param(
        entry('asns = ["AS13335"]'), 4, 'numbers like 13335, not "AS13335"', id="asn-string"
    ),
    pytest.param(entry("asns = [true]"), 4, "not true", id="asn-bool"),
    pytest.param(entry("asns = [1.5]"), 4, "not 1.5", id="asn-float"),
    pytest.param(entry("asns = [0]"), 4, "0 is not an AS number", id="asn-zero"),
    pytest.param(entry("asns = [-1]"), 4, "-1 is not an AS number", id="asn-negative"),
    pytest.param(
        entry("asns = [4294967296]"), 4, "4294967296 is not an AS number", id="asn-too-big"
    ),
    pytest.param(entry("asns = [1, 1]"), 4, "lists AS1 twice", id="asn-repeated"),
    pytest.param(entry('prefixes = ["10.0.0.0/33"]'), 4, "is not a CIDR", id="prefix-bad"),
    pytest.param(entry('prefixes = ["example.net"]'), 4, "is not a CIDR", id="prefix-name"),
    pytest.param(
        entry('prefixes = ["10.0.0.1/8"]'), 4, 'did you mean "10.0.0.0/8"', id="prefix-host-bits"
    ),
    pytest.param(entry('prefixes = ["0.0.0.0/0"]'), 4, "too broad", id="prefix-v4-too-broad"),
    pytest.param(entry('prefixes = ["2000::/3"]'), 4, "too broad", id="prefix-v6-too-broad"),
    pytest.param(entry("prefixes = [10]"), 4, "prefixes must hold strings", id="prefix-int"),
    pytest.param(
        entry("asns = [1]", 'abuse = "a@b.org"'), 5, "abuse must be an array", id="abuse-not-array"
    ),
    pytest.param(
        entry("asns = [1]", "abuse = [1]"), 5, "abuse must hold addresses", id="abuse-int"
    ),
    pytest.param(
        entry("asns = [1]", 'abuse = ["a@b.org\\r\\nBcc: c@d.org"]'),
        5,
        "line breaks",
        id="abuse-crlf",
    ),
    pytest.param(entry("asns = [1]", 'abuse = ["abuse"]'), 5, 'exactly one "@"', id="abuse-no-at"),
    pytest.param(
        entry("asns = [1]", 'abuse_form = "mailto:a@b.org"'), 5, "http(s) URL", id="form-not-http"
    ),
    pytest.param(
        entry("asns = [1]", 'country = "USA"'),
        5,
        "country must be an ISO 3166",
        id="country-alpha3",
    ),
    pytest.param(entry("asns = [1]", 'country = "UK"'), 5, 'use "GB"', id="country-uk"),
    pytest.param(entry("asns = [1]", "note = 1"), 5, "note must be a string", id="note-int"),
    pytest.param(
        entry("asns = [1]", 'abuse_email = "a@b.org"'),
        5,
        'unknown key "abuse_email"',
        id="unknown-key",
    ),
    pytest.param(
        TWO + "asns = [\n  64501,\n  64500,\n]\n",
        7,
        "AS64500 is listed under both [cdn.one] and [cdn.two]",
        id="asn-two-cdns",
    ),
    pytest.param(
        '[cdn.one]\nname = "One"\nprefixes = ["192.0.2.0/24"]\n'
        '[cdn.two]\nname = "Two"\nprefixes = ["192.0.2.0/24"]\n',
        6,
        "listed under both [cdn.one] and [cdn.two]",
        id="prefix-two-cdns",
    ),
]


@pytest.mark.parametrize(("content", "line", "problem"), BAD_FILES)
def test_bad_file_names_file_line_and_problem(
    tmp_path: Path, content: str, line: int, problem: str
) -> None:
    path = write(tmp_path, content)
    with pytest.raises(ConfigError) as caught:
        load_cdns(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert problem in message
    assert "\n" not in message and "\r" not in message


def test_shipped_directory_has_the_required_cdns() -> None:
    directory = load_cdns()
    assert len(directory) >= 12
    expected = {
        13335: "Cloudflare",
        209242: "Cloudflare",
        20940: "Akamai",
        54113: "Fastly",
        16509: "Amazon CloudFront / AWS",
        14618: "Amazon CloudFront / AWS",
        15169: "Google",
        396982: "Google",
        8075: "Microsoft Azure",
        19551: "Imperva",
        57724: "DDoS-Guard",
        200325: "bunny.net",
        60068: "CDN77",
        30148: "Sucuri",
        22822: "Edgio",
    }
    for asn, name in expected.items():
        cdn = directory.match(asn, None)
        assert cdn is not None and cdn.name.startswith(name), asn
    aws = directory.get("aws")
    assert aws is not None and aws.abuse == ("abuse@amazonaws.com",)
    assert "all of AWS" in aws.note


def test_shipped_file_is_documented_and_says_to_verify() -> None:
    shipped = Path(__file__).parents[1] / "workflows" / "data" / "cdns.toml"
    header = shipped.read_text(encoding="utf-8").split("\n[", 1)[0]
    assert "verify" in header and "prefixes" in header and "abuse_form" in header


def cdn(key: str, asns: tuple[int, ...] = (), prefixes: tuple[str, ...] = ()) -> CDN:
    """Build a CDN for matching tests."""
    return CDN(
        key=key,
        name=key.title(),
        asns=frozenset(asns),
        prefixes=tuple(ipaddress.ip_network(p) for p in prefixes),
        abuse=(),
        abuse_form=None,
        country=None,
        note="",
    )


DIRECTORY = CDNDirectory(
    [
        cdn("wide", asns=(64500,), prefixes=("198.51.100.0/24", "2001:db8::/32")),
        cdn("narrow", prefixes=("198.51.100.128/25",)),
        cdn("other", asns=(64501,)),
    ]
)


@pytest.mark.parametrize(
    ("asn", "address", "key"),
    [
        pytest.param(64500, None, "wide", id="by-asn"),
        pytest.param(64501, "198.51.100.200", "other", id="asn-before-prefix"),
        pytest.param(None, "198.51.100.10", "wide", id="by-prefix"),
        pytest.param(65000, "198.51.100.200", "narrow", id="most-specific-prefix-wins"),
        pytest.param(None, "2001:db8::1", "wide", id="by-ipv6-prefix"),
        pytest.param(None, "::ffff:198.51.100.200", "narrow", id="ipv4-mapped"),
        pytest.param(None, "[2001:db8::1]", "wide", id="bracketed-ipv6"),
        pytest.param(65000, "192.0.2.1", None, id="neither-known"),
        pytest.param(None, None, None, id="nothing-given"),
        pytest.param(None, "not an address", None, id="not-an-address"),
    ],
)
def test_match(asn: int | None, address: str | None, key: str | None) -> None:
    found = DIRECTORY.match(asn, address)
    assert (found.key if found else None) == key


def test_loaded_entry_has_every_field(tmp_path: Path) -> None:
    text = (
        '[cdn.example]\nname = "Example"\nasns = [64500]\nprefixes = ["192.0.2.0/24"]\n'
        'abuse = ["abuse@cdn.example"]\nabuse_form = "https://cdn.example/abuse"\n'
        'country = "NL"\nnote = """Two\nlines"""\n'
    )
    directory = load_cdns(write(tmp_path, text))
    assert list(directory) == [
        CDN(
            key="example",
            name="Example",
            asns=frozenset({64500}),
            prefixes=(ipaddress.ip_network("192.0.2.0/24"),),
            abuse=("abuse@cdn.example",),
            abuse_form="https://cdn.example/abuse",
            country="NL",
            note="Two\nlines",
        )
    ]
    assert directory.match(None, "192.0.2.7") is directory.get("example")


def toml_value(value: object) -> str:
    """Write a generated value as TOML (JSON's spelling is TOML's here, bar DEL)."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


SCALARS = st.one_of(
    st.integers(min_value=-5, max_value=2**32 + 5),
    st.sampled_from(["192.0.2.0/24", "10.0.0.1/8", "abuse@cdn.example", "https://x.org/"]),
    st.sampled_from(["US", "uk", "", "AS13335"]),
    st.text(max_size=20),
    st.booleans(),
)
BODIES = st.fixed_dictionaries(
    {"name": st.one_of(st.just("Example"), st.text(max_size=10))},
    optional={
        "asns": st.lists(st.one_of(st.integers(0, 70000), SCALARS), max_size=3),
        "prefixes": st.lists(SCALARS, max_size=2),
        "abuse": st.one_of(st.lists(SCALARS, max_size=2), SCALARS),
        "abuse_form": SCALARS,
        "country": SCALARS,
        "note": SCALARS,
        "other": SCALARS,
    },
)
KEYS = st.one_of(st.sampled_from(["cloudflare", "two", "Bad"]), st.text(max_size=5))
TEXT = st.one_of(
    st.text(max_size=300),
    st.dictionaries(KEYS, BODIES, max_size=3).map(
        lambda tables: "".join(
            f"[cdn.{toml_value(key)}]\n"
            + "".join(f"{name} = {toml_value(value)}\n" for name, value in body.items())
            for key, body in tables.items()
        )
    ),
)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(text=TEXT)
def test_any_text_loads_or_raises_config_error(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    path = write(tmp_path_factory.mktemp("fuzz"), text)
    try:
        directory = load_cdns(path)
    except ConfigError as error:
        assert str(error).startswith(str(path)) and "\n" not in str(error)
        return
    for found in directory:
        assert found.asns or found.prefixes
        assert all(1 <= asn <= 4294967295 for asn in found.asns)
        assert all(email_problem(address) is None for address in found.abuse)
