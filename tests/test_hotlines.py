"""The hotline directory and the shared TOML helpers: every bad file names its line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import tomlish
from hypothesis import given, settings
from hypothesis import strategies as st

from workflows.config.hotlines import Hotline, HotlineDirectory, load_hotlines
from workflows.config.tomlfile import line_of, load_toml, url_problem, where
from workflows.core.emails import email_problem
from workflows.errors import ConfigError

GOOD = '[hotline.GB]\nname = "Internet Watch Foundation"\n'


def write(directory: Path, content: str | bytes, name: str = "hotlines.toml") -> Path:
    """Write a file for a test and return its path."""
    path = directory / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


def entry(*lines: str) -> str:
    """Return a file with one [hotline.GB] table holding these lines."""
    return "\n".join(("# partners", "[hotline.GB]", *lines)) + "\n"


BAD_FILES = [
    pytest.param(entry('name = "IWF'), 3, "TOML syntax", id="syntax-unclosed-string"),
    pytest.param(GOOD + GOOD, 3, "TOML syntax", id="syntax-duplicate-table"),
    pytest.param(b'# ok\n[hotline.GB]\nname = "\xff"\n', 3, "not valid UTF-8", id="not-utf8"),
    pytest.param("title = 1\n" + GOOD, 1, 'unknown top-level key "title"', id="top-level-key"),
    pytest.param("hotline = 3\n", 1, "hotline must be a table", id="hotline-not-table"),
    pytest.param(
        "\n[hotline.usa]\nname = 'x'\n",
        2,
        "[hotline.usa]: country must be an ISO 3166",
        id="three-letters",
    ),
    pytest.param("[hotline.UK]\nname = 'x'\n", 1, 'use "GB"', id="uk-hint"),
    pytest.param("[hotline.ZZ]\nname = 'x'\n", 1, "ISO 3166 alpha-2", id="unassigned-code"),
    pytest.param("[hotline.gb]\nname = 'x'\n", 1, 'capitals: "GB"', id="lowercase"),
    pytest.param("[hotline]\nGB = 'IWF'\n", 2, "must be a table, not a string", id="entry-string"),
    pytest.param(
        "[[hotline.GB]]\nname = 'x'\n", 1, "must be a table, not an array", id="array-of-tables"
    ),
    pytest.param(entry('email = ""'), 2, "name is required", id="name-missing"),
    pytest.param(entry('name = ""'), 3, "name is required", id="name-empty"),
    pytest.param(entry('name = "   "'), 3, "name is required", id="name-blank"),
    pytest.param(entry("name = 5"), 3, "name must be a string, not an integer", id="name-int"),
    pytest.param(entry('name = "IWF\\u0007"'), 3, "control character", id="name-control"),
    pytest.param(entry('name = "IWF\\nBcc: x"'), 3, "control character", id="name-newline"),
    pytest.param(
        entry('name = "IWF"', 'email = "a@b.org\\r\\nBcc: c@d.org"'),
        4,
        "control character",
        id="email-crlf",
    ),
    pytest.param(
        entry('name = "IWF"', 'email = "a@b@c.org"'), 4, 'exactly one "@"', id="email-two-at"
    ),
    pytest.param(
        entry('name = "IWF"', 'email = "a@b.org,c@d.org"'),
        4,
        'exactly one "@"',
        id="email-two-recipients",
    ),
    pytest.param(
        entry('name = "IWF"', 'email = "iwf.org.uk"'), 4, 'exactly one "@"', id="email-no-at"
    ),
    pytest.param(
        entry('name = "IWF"', 'email = "a b@iwf.org.uk"'),
        4,
        "must not contain spaces",
        id="email-space",
    ),
    pytest.param(
        entry('name = "IWF"', 'email = "<a@iwf.org.uk>"'), 4, "not allowed", id="email-brackets"
    ),
    pytest.param(
        entry('name = "IWF"', 'email = "abuse@localhost"'),
        4,
        "domain with a dot",
        id="email-no-dot",
    ),
    pytest.param(
        entry('name = "IWF"', f'email = "{"a" * 60}@{"b" * 200}.org"'),
        4,
        "longer than 254",
        id="email-too-long",
    ),
    pytest.param(
        entry('name = "IWF"', 'email = ["a@b.org"]'),
        4,
        "email must be a string, not an array",
        id="email-array",
    ),
    pytest.param(
        entry('name = "IWF"', 'website = "ftp://iwf.org.uk/"'), 4, "http(s) URL", id="website-ftp"
    ),
    pytest.param(
        entry('name = "IWF"', 'website = "https://"'), 4, "http(s) URL", id="website-no-host"
    ),
    pytest.param(
        entry('name = "IWF"', 'website = "https://[iwf"'),
        4,
        "http(s) URL",
        id="website-bad-bracket",
    ),
    pytest.param(
        entry('name = "IWF"', 'website = "https://iwf.org.uk/ x"'), 4, "spaces", id="website-space"
    ),
    pytest.param(
        entry('name = "IWF"', 'note = "a\\u0000b"'), 4, "control character", id="note-nul"
    ),
    pytest.param(
        entry('name = "IWF"', 'emial = "a@b.org"'), 4, 'unknown key "emial"', id="unknown-key"
    ),
    pytest.param(
        '[hotline]\nGB = { name = "IWF", email = "bad" }\n', 2, 'exactly one "@"', id="inline-table"
    ),
    pytest.param(
        '[hotline]\nGB.name = "IWF"\n\nGB.email = "bad"\n', 4, 'exactly one "@"', id="dotted-keys"
    ),
    pytest.param(
        '[hotline.GB]\nname = "x"\nnote = """\n[hotline.FR]\n"""\nemail = "bad"\n',
        6,
        'exactly one "@"',
        id="multiline-string-is-not-a-header",
    ),
]


@pytest.mark.parametrize(("content", "line", "problem"), BAD_FILES)
def test_bad_file_names_file_line_and_problem(
    tmp_path: Path, content: str | bytes, line: int, problem: str
) -> None:
    path = write(tmp_path, content)
    with pytest.raises(ConfigError) as caught:
        load_hotlines(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert problem in message
    assert "\n" not in message and "\r" not in message


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"absent\.toml: cannot read the file"):
        load_hotlines(tmp_path / "absent.toml")


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    directory = load_hotlines(write(tmp_path, b"\xef\xbb\xbf" + GOOD.encode()))
    assert directory.get("GB") is not None


def test_referral_address_is_none_without_email(tmp_path: Path) -> None:
    text = (
        '[hotline.GB]\nname = "IWF"\nemail = "referrals@iwf.example"\n'
        '[hotline.FR]\nname = "Point de Contact"\nemail = ""\n'
        '[hotline.DE]\nname = "eco"\n'
    )
    directory = load_hotlines(write(tmp_path, text))
    assert directory.referral_address("GB") == "referrals@iwf.example"
    assert directory.referral_address("gb") == "referrals@iwf.example"
    assert directory.referral_address("FR") is None
    assert directory.referral_address("DE") is None
    assert directory.referral_address("US") is None
    assert directory.get("FR") == Hotline("FR", "Point de Contact", None, None)


def test_directory_iterates_in_country_order() -> None:
    directory = HotlineDirectory(
        {c: Hotline(c, f"hotline {c}", None, None) for c in ("US", "AT", "GB")}
    )
    assert [h.country for h in directory] == ["AT", "GB", "US"]
    assert len(directory) == 3
    assert "gb" in directory and "FR" not in directory


def test_empty_file_is_an_empty_directory(tmp_path: Path) -> None:
    assert len(load_hotlines(write(tmp_path, "# no partners yet\n"))) == 0


REQUIRED = {
    "GB": "Internet Watch Foundation",
    "US": "NCMEC",
    "CA": "Cybertip.ca",
    "AU": "eSafety",
    "NL": "Offlimits",
    "DE": "eco",
    "FR": "Point de Contact",
    "IE": "Hotline.ie",
    "BE": "Child Focus",
    "AT": "Stopline",
    "ES": "INCIBE",
    "PL": "Dyżurnet.pl",
    "BR": "SaferNet",
    "CO": "Te Protejo",
    "JP": "Internet Hotline Center",
    "ZA": "Film and Publication Board",
}
OTHERS = [
    "IT",
    "CZ",
    "SK",
    "HU",
    "RO",
    "BG",
    "GR",
    "PT",
    "SE",
    "FI",
    "DK",
    "IS",
    "EE",
    "LV",
    "LT",
    "LU",
    "SI",
    "HR",
    "CY",
    "MT",
    "BA",
    "KR",
    "TW",
    "TH",
    "NZ",
]


def test_shipped_directory_has_the_required_hotlines() -> None:
    directory = load_hotlines()
    assert len(directory) >= 40
    for country, name in REQUIRED.items():
        hotline = directory.get(country)
        assert hotline is not None and name in hotline.name, country
    assert all(directory.get(country) is not None for country in OTHERS)


def test_shipped_directory_routes_every_country_as_no_partner() -> None:
    directory = load_hotlines()
    assert all(directory.referral_address(h.country) is None for h in directory)
    assert all(h.website is None or h.website.startswith("https://") for h in directory)


def test_shipped_file_says_to_verify_it() -> None:
    shipped = Path(__file__).parents[1] / "workflows" / "data" / "hotlines.toml"
    first = shipped.read_text(encoding="utf-8").splitlines()[0]
    assert "verify against inhope.org before production use" in first


LINES = "\n".join(
    [
        "# header",  # 1
        '[ hotline . "US" ]',  # 2
        'name = "NCMEC"',  # 3
        'note = """',  # 4
        "[hotline.FR]",  # 5: inside a string, not a header
        '"""',  # 6
        "[hotline]",  # 7
        'GB = { name = "IWF", email = "x" }',  # 8
        'FR.name = "Point de Contact"',  # 9
        "[cdn.a]",  # 10
        "asns = [",  # 11
        "  1,",  # 12
        "]",  # 13
    ]
)


@pytest.mark.parametrize(
    ("table", "key", "line"),
    [
        pytest.param("hotline.US", None, 2, id="quoted-header"),
        pytest.param(("hotline", "US"), "name", 3, id="key-under-header"),
        pytest.param("hotline.US", "website", 2, id="absent-key-falls-back-to-table"),
        pytest.param("hotline.GB", None, 8, id="inline-table"),
        pytest.param("hotline.GB", "email", 8, id="key-in-inline-table"),
        pytest.param("hotline.FR", None, 9, id="dotted-key-defines-table"),
        pytest.param("hotline.FR", "name", 9, id="dotted-key"),
        pytest.param("cdn.a", "asns", 11, id="multi-line-array"),
        pytest.param("hotline.XX", "name", 1, id="absent-table-falls-back-to-1"),
        pytest.param((), "hotline", 2, id="top-level-key-first-use"),
    ],
)
def test_line_of(table: str | tuple[str, ...], key: str | None, line: int) -> None:
    assert line_of(LINES, table, key) == line


def test_where_formats_path_and_line() -> None:
    assert where(Path("hotlines.toml"), LINES, "hotline.US", "name") == "hotlines.toml:3"


def test_syntax_error_at_end_of_file_names_the_last_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"x\.toml:3: TOML syntax: .*end of the file"):
        load_toml(write(tmp_path, "a = 1\nb = [\n  2,\n\n", "x.toml"))


@pytest.mark.parametrize(
    "address", ["abuse@cloudflare.com", "a.b+tag@sub.example.co.uk", "x@xn--80ak6aa92e.com"]
)
def test_plain_addresses_are_accepted(address: str) -> None:
    assert email_problem(address) is None


@pytest.mark.parametrize(
    "address",
    [
        "",
        "@example.org",
        "a@",
        "a@.org",
        "a@b..org",
        "a..b@c.org",
        "a@-b.org",
        '"a"@b.org',
        "a@b.org\n",
        "a@b.org\r\nBcc: c@d.org",
        "a@b.org;c@d.org",
        "a@b.org c@d.org",
    ],
)
def test_unsafe_addresses_are_refused(address: str) -> None:
    assert email_problem(address) is not None


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://www.iwf.org.uk/", True),
        ("http://192.0.2.1:8080/x", True),
        ("javascript:alert(1)", False),
        ("www.iwf.org.uk", False),
        ("https://a\n.org", False),
    ],
)
def test_url_problem(url: str, ok: bool) -> None:
    assert (url_problem(url) is None) is ok


def toml_string(value: str) -> str:
    """Write any string as a TOML basic string (JSON's escapes are TOML's, bar DEL)."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


FRAGMENTS = [
    "[hotline.GB]",
    "[hotline.US]",
    "[hotline.uk]",
    "[hotline]",
    "[[hotline.FR]]",
    "[other]",
    'name = "IWF"',
    "name = 1",
    'email = ""',
    'email = "referrals@iwf.example"',
    'email = "a@b"',
    'website = "https://www.iwf.org.uk/"',
    "website = true",
    'note = """',
    '"""',
    "GB = { name = 'x' }",
    "US.name = 'y'",
    "hotline = 1",
    "email = [1, 2]",
    "x = {",
]
COUNTRIES = st.one_of(st.sampled_from(["GB", "US", "FR", "uk", "ZZ"]), st.text(max_size=3))
VALUES = st.one_of(
    st.sampled_from(["IWF", "", " ", "referrals@iwf.example", "a@b", "https://iwf.org.uk/"]),
    st.text(max_size=30),
)


def toml_file(tables: dict[str, dict[str, str]]) -> str:
    """Write generated hotline tables as TOML text."""
    return "".join(
        f"[hotline.{toml_string(country)}]\n"
        + "".join(f"{key} = {toml_string(value)}\n" for key, value in body.items())
        for country, body in tables.items()
    )


TEXT = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=20)), max_size=12).map(
        "\n".join
    ),
    st.dictionaries(
        COUNTRIES,
        st.fixed_dictionaries(
            {"name": VALUES}, optional={k: VALUES for k in ("email", "website", "note", "x")}
        ),
        max_size=4,
    ).map(toml_file),
)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(text=TEXT)
def test_any_text_loads_or_raises_config_error(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    path = write(tmp_path_factory.mktemp("fuzz"), text)
    try:
        directory = load_hotlines(path)
    except ConfigError as error:
        assert str(error).startswith(str(path)) and "\n" not in str(error)
        return
    for hotline in directory:
        assert hotline.email is None or email_problem(hotline.email) is None


def test_a_number_too_long_for_python_is_a_config_error_naming_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "hotlines.toml"
    bad.write_text("[hotline.US]\nname = " + "9" * 5000 + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"hotlines\.toml:2: TOML syntax: a number has more"):
        load_hotlines(bad)


def test_tables_nested_too_deeply_are_a_config_error_naming_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "hotlines.toml"
    bad.write_text(GOOD + "note = " + "[" * 3000 + "]" * 3000 + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"hotlines\.toml:3: TOML syntax: .*nested too deeply"):
        load_hotlines(bad)


HOTLINE_NAMES = ("hotline", "GB", "US", "FR", "name", "email", "website", "note")
HOTLINE_SHAPE: tomlish.Schema = tomlish.Whole(
    {
        "hotline": tomlish.Each(
            st.one_of(st.sampled_from(["GB", "US", "FR", "DE"]), COUNTRIES),
            {
                "name": VALUES,
                "email": st.sampled_from(
                    ["referrals@iwf.example", "", "a@b", "a@b.org\r\nBcc: c@d.org"]
                ),
                "website": st.sampled_from(["https://www.iwf.org.uk/", "javascript:x", ""]),
                "note": st.text(max_size=30),
            },
        )
    }
)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(text=st.one_of(TEXT, tomlish.documents(HOTLINE_NAMES, HOTLINE_SHAPE)))
def test_any_text_or_toml_structure_loads_or_names_file_and_line(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    path = write(tmp_path_factory.mktemp("fuzz"), text)
    try:
        directory = load_hotlines(path)
    except ConfigError as error:
        assert re.match(rf"{re.escape(str(path))}:[1-9][0-9]*: \S", str(error)), str(error)
        assert "\n" not in str(error) and "\r" not in str(error)
        return
    for hotline in directory:
        assert hotline.name.strip() and hotline.name.isprintable()
        assert hotline.email is None or email_problem(hotline.email) is None
        assert hotline.website is None or url_problem(hotline.website) is None
