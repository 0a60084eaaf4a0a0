"""Tests for workflows.core.urls: the table of accepted and refused URLs, then properties."""

from __future__ import annotations

import dataclasses
import string
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from workflows.core.urls import MAX_URL_OCTETS, NormalizedURL, normalize_url
from workflows.errors import InputError, URLError

PROPERTY_SETTINGS = settings(max_examples=400, derandomize=True, deadline=None)


def accept(raw: str, url: str, *, id: str, **fields: Any) -> Any:
    """Build one accepted case: raw input, expected url and any other expected fields."""
    return pytest.param(raw, url, fields, id=id)


ACCEPTED = [
    accept("http://example.com/", "http://example.com/", id="plain", host_kind="domain", notes=()),
    accept("https://example.com/a/b?c=d", "https://example.com/a/b?c=d", id="https-path-query"),
    accept("HTTP://EXAMPLE.COM/A", "http://example.com/A", id="uppercase-scheme-host-path-kept"),
    accept("hTTpS://Example.Com", "https://example.com/", id="mixed-case-empty-path"),
    accept("  http://a.test/x \t\r\n", "http://a.test/x", id="surrounding-whitespace-stripped"),
    accept("http://a.test:80/", "http://a.test/", id="default-port-http", port=None),
    accept("https://a.test:443/", "https://a.test/", id="default-port-https", port=None),
    accept("http://a.test:443/", "http://a.test:443/", id="https-port-on-http-kept", port=443),
    accept("https://a.test:8443/x", "https://a.test:8443/x", id="other-port", port=8443),
    accept("http://a.test:00080/", "http://a.test/", id="port-leading-zeros", port=None),
    accept("http://a.test:008080/", "http://a.test:8080/", id="port-zeros-removed", port=8080),
    accept("http://a.test:/", "http://a.test/", id="empty-port-is-default", port=None),
    accept("http://a.test:65535/", "http://a.test:65535/", id="highest-port", port=65535),
    accept("http://a.test", "http://a.test/", id="empty-path", path="/", query=None),
    accept("http://a.test?x=1", "http://a.test/?x=1", id="query-without-path", query="x=1"),
    accept("http://a.test/?", "http://a.test/?", id="empty-query-kept", query=""),
    accept("http://a.test/p#frag", "http://a.test/p", id="fragment-dropped", query=None),
    accept("http://a.test/p?q#f?g", "http://a.test/p?q", id="fragment-after-query"),
    accept("http://a.test#f", "http://a.test/", id="fragment-without-path"),
    accept("http://a.test/a/../b/./c", "http://a.test/a/../b/./c", id="dot-segments-kept"),
    accept("http://a.test/%7e%2F%zz", "http://a.test/%7e%2F%zz", id="escapes-kept-byte-exact"),
    accept("http://a.test/a?b?c&d=%20", "http://a.test/a?b?c&d=%20", id="query-byte-exact"),
    accept("http://a.test//evil.test/", "http://a.test//evil.test/", id="double-slash-path"),
    accept("http://a.test/x@y:z", "http://a.test/x@y:z", id="at-in-path-is-not-userinfo", notes=()),
    accept("http://a.test/a\\b", "http://a.test/a\\b", id="backslash-in-path-kept"),
    accept(
        "http://bücher.example/ä?q=ü#frag",
        "http://xn--bcher-kva.example/%C3%A4?q=%C3%BC",
        id="idn-host-unicode-path-query",
        host="xn--bcher-kva.example",
        display_host="bücher.example",
        path="/%C3%A4",
        query="q=%C3%BC",
        notes=(),
    ),
    accept(
        "http://BÜCHER.example/",
        "http://xn--bcher-kva.example/",
        id="idn-uppercase",
        display_host="bücher.example",
    ),
    accept(
        "http://xn--bcher-kva.example/",
        "http://xn--bcher-kva.example/",
        id="existing-a-label",
        display_host="bücher.example",
    ),
    accept("http://XN--BCHER-KVA.example/", "http://xn--bcher-kva.example/", id="a-label-upper"),
    accept("http://faß.de/", "http://xn--fa-hia.de/", id="idna2008-nontransitional-sharp-s"),
    accept("http://例え.テスト/", "http://xn--r8jz45g.xn--zckzah/", id="idn-japanese"),
    accept(
        "http://bücher。example/",
        "http://xn--bcher-kva.example/",
        id="ideographic-full-stop",
        notes=("was read as 'bücher.example'",),
    ),
    accept(
        "http://ｅｘａｍｐｌｅ.com/",
        "http://example.com/",
        id="fullwidth-host-mapped",
        notes=("UTS #46",),
    ),
    accept("http://a.test./", "http://a.test/", id="trailing-dot-removed", host="a.test"),
    accept("http://a_b.example/", "http://a_b.example/", id="underscore-label"),
    accept("http://-x-.example/", "http://-x-.example/", id="hyphen-edges-like-browsers"),
    accept("http://" + "a" * 63 + ".test/", "http://" + "a" * 63 + ".test/", id="label-63"),
    accept(
        "http://bank.test@evil.test/",
        "http://evil.test/",
        id="userinfo-phishing-trick",
        host="evil.test",
        notes=("userinfo 'bank.test' removed: the real host is evil.test",),
    ),
    accept(
        "http://user:hunter2@evil.test:8080/x",
        "http://evil.test:8080/x",
        id="userinfo-with-password",
        notes=("userinfo 'user:…' removed",),
    ),
    accept(
        "http://a@b@evil.test/",
        "http://evil.test/",
        id="userinfo-last-at-wins",
        host="evil.test",
        notes=("userinfo 'a@b' removed",),
    ),
    accept("http://@a.test/", "http://a.test/", id="empty-userinfo", notes=("empty userinfo",)),
    accept(
        "http://[2001:DB8::1]:8080/",
        "http://[2001:db8::1]:8080/",
        id="ipv6-port",
        host="2001:db8::1",
        host_kind="ipv6",
        port=8080,
        display_host="2001:db8::1",
    ),
    accept("http://[2001:db8:0:0:0:0:0:1]/", "http://[2001:db8::1]/", id="ipv6-compressed"),
    accept("http://[::1]:/", "http://[::1]/", id="ipv6-empty-port", port=None),
    accept("http://u@[::1]/", "http://[::1]/", id="ipv6-userinfo", notes=("userinfo 'u'",)),
    accept("http://192.0.2.1/", "http://192.0.2.1/", id="ipv4-plain", host_kind="ipv4", notes=()),
    accept("http://192.0.2.1:8080/", "http://192.0.2.1:8080/", id="ipv4-port", port=8080),
    accept(
        "http://0x7f.1/",
        "http://127.0.0.1/",
        id="ipv4-hex-two-parts",
        host="127.0.0.1",
        host_kind="ipv4",
        notes=("'0x7f.1' converted to 127.0.0.1",),
    ),
    accept("http://2130706433/", "http://127.0.0.1/", id="ipv4-one-number", host_kind="ipv4"),
    accept("http://0177.0.0.1/", "http://127.0.0.1/", id="ipv4-octal", host_kind="ipv4"),
    accept("http://0X7F.0.0.01/", "http://127.0.0.1/", id="ipv4-upper-hex"),
    accept("http://127.1/", "http://127.0.0.1/", id="ipv4-two-parts"),
    accept("http://10.1.258/", "http://10.1.1.2/", id="ipv4-three-parts"),
    accept("http://1.0x/", "http://1.0.0.0/", id="ipv4-bare-0x-is-zero"),
    accept("http://4294967295/", "http://255.255.255.255/", id="ipv4-max"),
    accept("http://127.0.0.1./", "http://127.0.0.1/", id="ipv4-trailing-dot"),
    accept("http://１２７.０.０.１/", "http://127.0.0.1/", id="ipv4-fullwidth-digits"),
    accept(
        "http://1.2.3.a/", "http://1.2.3.a/", id="numeric-labels-letter-last", host_kind="domain"
    ),
    accept(
        "http://a.test/" + "x" * (MAX_URL_OCTETS - 14), "http://a.test/" + "x" * 7986, id="8000"
    ),
]


@pytest.mark.parametrize(("raw", "url", "fields"), ACCEPTED)
def test_accepted(raw: str, url: str, fields: dict[str, Any]) -> None:
    result = normalize_url(raw)
    assert result.url == url
    for name, expected in fields.items():
        if name == "notes":
            assert len(result.notes) == len(expected), result.notes
            for note, part in zip(result.notes, expected, strict=True):
                assert part in note
        else:
            assert getattr(result, name) == expected, name
    assert normalize_url(result.url) == dataclasses.replace(result, notes=())


REFUSED = [
    pytest.param("", "empty", id="empty"),
    pytest.param(" \t\n", "empty", id="only-whitespace"),
    pytest.param("http://a.test/\r\nBcc: x", "control character U+000D at position 15", id="crlf"),
    pytest.param("http://a.test/\nx", "U+000A at position 15", id="lf"),
    pytest.param("  http://a.test/\tx", "U+0009 at position 17", id="tab-position-counts-raw"),
    pytest.param("http://a.test/\x00", "control character U+0000", id="nul"),
    pytest.param("http://a.test/\x7f", "control character U+007F", id="del"),
    pytest.param("http://a.test/\x85", "control character U+0085", id="c1-nel"),
    pytest.param("http://a b.test/", "space character U+0020 (SPACE) at position 9", id="space"),
    pytest.param("http://a.test/a b", "U+0020", id="space-in-path"),
    pytest.param("http://a.test/\u00a0", "U+00A0 (NO-BREAK SPACE)", id="nbsp"),
    pytest.param("http://a.test/\u3000", "U+3000", id="ideographic-space"),
    pytest.param("http://a.test/\u2028", "line separator U+2028", id="line-separator"),
    pytest.param("http://a.test/\u2029", "paragraph separator U+2029", id="paragraph-separator"),
    pytest.param(
        "http://a.test/\u202egnp.exe",
        "invisible format character U+202E (RIGHT-TO-LEFT OVERRIDE) at position 15",
        id="rlo",
    ),
    pytest.param("http://ex\u200bample.com/", "U+200B (ZERO WIDTH SPACE)", id="zero-width-space"),
    pytest.param("http://a\u200d.test/", "U+200D", id="zero-width-joiner"),
    pytest.param("\ufeffhttp://a.test/", "U+FEFF", id="bom"),
    pytest.param("http://a.test/\u00ad", "U+00AD (SOFT HYPHEN)", id="soft-hyphen"),
    pytest.param("http://a.test/\ud800", "U+D800", id="lone-surrogate"),
    pytest.param("http://a.test/#\nx", "U+000A", id="control-in-fragment"),
    pytest.param("ftp://a.test/", "scheme 'ftp' is not allowed: only http and https", id="ftp"),
    pytest.param("javascript:alert(1)", "scheme 'javascript' is not allowed", id="javascript"),
    pytest.param("data:text/html,<b>x</b>", "scheme 'data' is not allowed", id="data"),
    pytest.param("file:///etc/passwd", "scheme 'file'", id="file"),
    pytest.param("hxxp://evil.test/", "defanged", id="defanged-scheme"),
    pytest.param("example.com/a", "write http:// or https://", id="no-scheme"),
    pytest.param("example.com:8080/a", "no scheme", id="no-scheme-with-port"),
    pytest.param("localhost:80", "no scheme", id="no-scheme-localhost-port"),
    pytest.param("//a.test/", "no scheme", id="scheme-relative"),
    pytest.param("http//a.test/", "no scheme", id="missing-colon"),
    pytest.param("http:/x", "must be followed by '//'", id="one-slash"),
    pytest.param("http:x", "must be followed by '//'", id="no-slash"),
    pytest.param("http:\\\\a.test/", "backslashes do not count", id="backslash-slashes"),
    pytest.param("http://evil.test\\@bank.test/", "backslash", id="backslash-trick"),
    pytest.param("http://evil.test\\bank.test/", "hides the real host", id="backslash-host"),
    pytest.param("http:///path", "no host", id="no-host-path"),
    pytest.param("http://:80/", "no host", id="no-host-port"),
    pytest.param("http://", "no host", id="no-host-at-all"),
    pytest.param("http://user@/", "no host", id="no-host-after-userinfo"),
    pytest.param("http://./", "no host", id="only-dot"),
    pytest.param("http://a.test:99999/", "port 99999 is out of range", id="port-too-big"),
    pytest.param("http://a.test:0/", "out of range", id="port-zero"),
    pytest.param("http://a.test:" + "9" * 5000 + "/", "out of range", id="port-huge"),
    pytest.param("http://a.test:8o/", "port '8o' is not a number", id="port-letter"),
    pytest.param("http://a.test:-1/", "not a number", id="port-negative"),
    pytest.param("http://a.test:٨٠/", "not a number", id="port-arabic-digits"),
    pytest.param("http://a.test:80:80/", "more than one ':'", id="two-ports"),
    pytest.param("http://2001:db8::1/", "must be in brackets", id="ipv6-without-brackets"),
    pytest.param("http://[::1/", "unbalanced '['", id="ipv6-unclosed"),
    pytest.param("http://::1]/", "bracket", id="ipv6-unopened"),
    pytest.param("http://[::1]x/", "unexpected 'x'", id="ipv6-trailing-text"),
    pytest.param("http://[fe80::1%25eth0]/", "zone id", id="ipv6-zone-id"),
    pytest.param("http://[fe80::1%eth0]/", "zone id", id="ipv6-raw-zone-id"),
    pytest.param("http://[::g]/", "not a valid IPv6 address", id="ipv6-bad-hex"),
    pytest.param("http://[]/", "not a valid IPv6 address", id="ipv6-empty"),
    pytest.param("http://[1.2.3.4]/", "not a valid IPv6 address", id="ipv4-in-brackets"),
    pytest.param("http://[v1.x]/", "not a valid IPv6 address", id="ipvfuture"),
    pytest.param("http://evil[.]test/", "defanging", id="defanged-dot"),
    pytest.param("http://256.1.1.1/", "out of range", id="ipv4-part-256"),
    pytest.param("http://1.2.3.256/", "out of range", id="ipv4-last-256"),
    pytest.param("http://1.16777216/", "out of range", id="ipv4-two-parts-overflow"),
    pytest.param("http://4294967296/", "out of range", id="ipv4-one-number-overflow"),
    pytest.param("http://1" + "0" * 500 + "/", "out of range", id="ipv4-huge-number"),
    pytest.param("http://1.2.3.4.5/", "not a valid IPv4 address", id="ipv4-five-parts"),
    pytest.param("http://09.1.1.1/", "not a valid IPv4 address", id="ipv4-bad-octal"),
    pytest.param("http://1..2/", "not a valid IPv4 address", id="ipv4-empty-part"),
    pytest.param("http://evil.0x10/", "not a valid IPv4 address", id="numeric-last-label"),
    pytest.param("http://a.123/", "not a valid IPv4 address", id="digits-last-label"),
    pytest.param("http://%65vil.test/", "'%' in host", id="percent-in-host"),
    pytest.param("http://a..b/", "empty label in host 'a..b'", id="empty-label"),
    pytest.param("http://.a.test/", "empty label", id="leading-dot"),
    pytest.param("http://a.test../", "empty label", id="two-trailing-dots"),
    pytest.param(
        "http://" + "a" * 70 + ".test/",
        "host label 'aaaaaaaaaaaaaaaaaaaa…' is 70 octets: the limit is 63 (RFC 1035",
        id="long-label",
    ),
    pytest.param("http://" + "ü" * 60 + ".test/", "octets as punycode", id="long-idn-label"),
    pytest.param(
        "http://" + ".".join(["a" * 60] * 5) + "/",
        "is 304 octets: the limit is 253",
        id="long-host",
    ),
    pytest.param("http://" + "a." * 600 + "/", "characters: the limit is 253", id="huge-host"),
    pytest.param(
        "http://a.test/" + "x" * (MAX_URL_OCTETS - 13),
        "8001 octets after normalisation: the limit is 8000",
        id="long-url",
    ),
    pytest.param(
        "http://a.test/" + "ü" * 3000,
        "octets after normalisation",
        id="long-after-percent-encoding",
    ),
    pytest.param("http://a.test/" + "x" * 70000, "the limit is 65536", id="huge-input"),
    pytest.param("http://a<b.test/", "character '<' is not allowed", id="lt-in-host"),
    pytest.param('http://a"b.test/', "character '\"'", id="quote-in-host"),
    pytest.param("http://a{b}.test/", "character '{'", id="brace-in-host"),
    pytest.param("http://a|b.test/", "character '|'", id="pipe-in-host"),
    pytest.param("http://a^b.test/", "character '^'", id="caret-in-host"),
    pytest.param("http://a`b.test/", "character '`'", id="backtick-in-host"),
    pytest.param("http://a!b.test/", "character '!'", id="sub-delim-in-host"),
    pytest.param("http://a／b.test/", "character '/'", id="fullwidth-solidus-in-host"),
    pytest.param("http://xn--zz.test/", "not valid IDNA", id="bad-a-label"),
    pytest.param("http://xn--.test/", "not valid IDNA", id="empty-a-label"),
    pytest.param("http://☃.net/", "not valid IDNA", id="disallowed-symbol"),
    pytest.param("http://bü_cher.test/", "not valid IDNA", id="underscore-in-idn-label"),
    pytest.param("http://-bücher.test/", "not valid IDNA", id="idn-leading-hyphen"),
    pytest.param("http://\u0301a.test/", "not valid IDNA", id="idn-leading-combining-mark"),
]


@pytest.mark.parametrize(("raw", "message"), REFUSED)
def test_refused(raw: str, message: str) -> None:
    with pytest.raises(URLError) as caught:
        normalize_url(raw)
    assert message in str(caught.value)
    assert caught.value.message == str(caught.value)


def test_url_error_is_an_input_error() -> None:
    with pytest.raises(InputError) as caught:
        normalize_url("ftp://a.test/")
    assert caught.value.as_dict()["kind"] == "url"


def test_non_text_refused() -> None:
    with pytest.raises(URLError, match="must be text"):
        normalize_url(b"http://a.test/")  # type: ignore[arg-type]


def test_password_never_kept() -> None:
    result = normalize_url("https://admin:hunter2@evil.test/login")
    assert "hunter2" not in result.url
    assert not any("hunter2" in note for note in result.notes)


def test_result_helpers() -> None:
    result = normalize_url("http://[2001:DB8::1]:8080/x")
    assert result.authority == "[2001:db8::1]:8080"
    assert result.effective_port == 8080
    assert str(result) == "http://[2001:db8::1]:8080/x"
    plain = normalize_url("https://a.test")
    assert (plain.authority, plain.effective_port) == ("a.test", 443)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plain.host = "b.test"  # type: ignore[misc]


# Properties. Strategies build URL-shaped strings from pieces that are often valid and often not.

PRINTABLE = string.ascii_letters + string.digits + string.punctuation
ANY_CHAR = st.characters(codec="utf-8")  # any code point except lone surrogates
LABELS = st.one_of(
    st.from_regex(r"[A-Za-z0-9_-]{1,10}", fullmatch=True),
    st.sampled_from(
        ["xn--bcher-kva", "bücher", "ｅｘａｍｐｌｅ", "例え", "faß", "0x7f", "0177", "1"]
    ),
    st.text(ANY_CHAR, min_size=1, max_size=6),
)
DOMAINS = st.lists(LABELS, min_size=1, max_size=4).map(".".join)
IPV4S = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.integers(0, 2**32).map(str),
    st.integers(0, 2**32).map(hex),
    st.lists(
        st.integers(0, 300).map(oct).map(lambda o: o.replace("0o", "0")), min_size=1, max_size=5
    ).map(".".join),
)
IPV6S = st.ip_addresses(v=6).map(lambda a: f"[{str(a).upper()}]")
HOSTS = st.one_of(DOMAINS, IPV4S, IPV6S, st.text(ANY_CHAR, max_size=8))
USERINFO = st.one_of(
    st.just(""), st.text(st.sampled_from(PRINTABLE), max_size=10).map("{}@".format)
)
PORTS = st.one_of(
    st.just(""),
    st.just(":"),
    st.integers(0, 70000).map(":{}".format),
    st.text(st.sampled_from(PRINTABLE), max_size=5).map(":{}".format),
)
PATH_CHARS = st.one_of(st.sampled_from(PRINTABLE), ANY_CHAR)
TAILS = st.text(PATH_CHARS, max_size=30)
SCHEMES = st.sampled_from(["http://", "https://", "HTTP://", "hTtPs://", "http:/", "ftp://", ""])
URL_LIKE = st.builds("{}{}{}{}{}".format, SCHEMES, USERINFO, HOSTS, PORTS, TAILS)


def check_properties(raw: str) -> NormalizedURL | None:
    """Assert what must hold for any input; return the result when accepted."""
    try:
        result = normalize_url(raw)
    except URLError as exc:
        assert exc.message
        return None
    assert isinstance(result, NormalizedURL)
    assert all(0x21 <= ord(char) <= 0x7E for char in result.url), result.url
    assert len(result.url) <= MAX_URL_OCTETS
    again = normalize_url(result.url)
    assert again.url == result.url
    assert (again.host, again.port, again.path, again.query) == (
        result.host,
        result.port,
        result.path,
        result.query,
    )
    assert again.notes == ()
    return result


@PROPERTY_SETTINGS
@given(st.text())
def test_any_text_is_accepted_or_refused(raw: str) -> None:
    check_properties(raw)


@PROPERTY_SETTINGS
@given(URL_LIKE)
def test_url_like_text_is_accepted_or_refused(raw: str) -> None:
    check_properties(raw)


@PROPERTY_SETTINGS
@given(st.sampled_from(["http://", "https://"]), DOMAINS, TAILS)
def test_plain_urls_mostly_accepted_and_stable(scheme: str, host: str, tail: str) -> None:
    check_properties(scheme + host + "/" + tail)


ASCII_DOMAINS = st.lists(
    st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True), min_size=1, max_size=3
).map(".".join)


@PROPERTY_SETTINGS
@given(
    ASCII_DOMAINS,
    st.one_of(st.just(""), st.from_regex(r":[A-Za-z0-9]{0,8}", fullmatch=True)),
    ASCII_DOMAINS,
)
def test_host_is_never_the_userinfo(decoy: str, password: str, real: str) -> None:
    assume(decoy != real)
    result = check_properties(f"http://{decoy}{password}@{real}/login")
    assert result is not None
    assert result.host == real
    assert result.url == f"http://{real}/login"
    assert result.notes[0].startswith(f"userinfo '{decoy}")
