"""The session cookie is Secure whenever the request came over HTTPS, and X-Forwarded-*
is believed only from the proxies in TAKEDOWN_TRUSTED_PROXIES, for the cookie and for the
address the sign-in throttle counts.

Attacks: a client that writes X-Forwarded-Proto or X-Forwarded-For itself, to strip the
Secure flag or to spread its guesses over made-up addresses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from deskapp import PASSWORD, Clock, TestClient
from hypothesis import given
from hypothesis import strategies as st
from test_sign_in_throttle import WRONG, CountingHasher, sign_in

from workflows.config.settings import load_settings
from workflows.core.proxies import Client, forwarded_client, parse_networks
from workflows.core.throttle import ADDRESS
from workflows.errors import ConfigError
from workflows.store import accounts
from workflows.web.app import create_app

PROXY = "10.1.2.3"
OUTSIDER = "198.51.100.9"
TRUSTED = parse_networks(["10.1.2.0/24", "fd00::/8"])


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    counting = CountingHasher()
    decoy = counting.hash("decoy")
    monkeypatch.setattr(accounts, "hasher", lambda: counting)
    monkeypatch.setattr(accounts, "_decoy_hash", lambda: decoy)


@contextmanager
def desk_behind(
    home: Path, peer: str, trusted: str = "", base_url: str = "http://desk.example"
) -> Iterator[TestClient]:
    """Run the desk with a supervisor, as reached from PEER (a proxy or a client)."""
    env = {"TAKEDOWN_HOME": str(home), "TAKEDOWN_TRUSTED_PROXIES": trusted}
    app = create_app(load_settings(env), clock=Clock())
    with app.state.sessions() as session:
        if accounts.find_user(session, "sue") is None:
            accounts.create_user(session, "sue", "supervisor", PASSWORD)
            session.commit()
    with TestClient(app, base_url=base_url, client=(peer, 40000)) as client:
        yield client


def session_cookie(answer: httpx.Response) -> str:
    (cookie,) = [
        h for h in answer.headers.get_list("set-cookie") if h.startswith("takedown_session=")
    ]
    return cookie


def test_the_cookie_is_secure_over_https(tmp_path: Path) -> None:
    with desk_behind(tmp_path, OUTSIDER, base_url="https://desk.example") as client:
        answer = sign_in(client, "sue", PASSWORD)
    assert answer.status_code == 303
    assert "; secure" in session_cookie(answer).lower()


def test_a_trusted_proxy_saying_https_makes_the_cookies_secure(tmp_path: Path) -> None:
    https = {"X-Forwarded-Proto": "https"}
    with desk_behind(tmp_path, PROXY, trusted="10.1.2.0/24") as client:
        form = client.get("/login", headers=https)
        # The browser speaks HTTPS to the proxy, so it sends the Secure cookie back; the
        # test client sees plain HTTP and would not: it is sent by hand.
        (login_cookie,) = form.headers.get_list("set-cookie")
        assert "; secure" in login_cookie.lower()
        token = login_cookie.split(";")[0].partition("=")[2]
        client.cookies.clear()
        answer = client.post(
            "/login",
            data={"name": "sue", "password": PASSWORD, "login_token": token},
            headers={**https, "Cookie": f"takedown_login={token}"},
            follow_redirects=False,
        )
    assert answer.status_code == 303
    assert "; secure" in session_cookie(answer).lower()


def test_without_trusted_proxies_plain_http_cookies_are_not_secure(tmp_path: Path) -> None:
    # Anyone can write the header: from a peer nobody trusts it changes nothing.
    with desk_behind(tmp_path, PROXY) as client:
        answer = sign_in(client, "sue", PASSWORD, **{"X-Forwarded-Proto": "https"})
    assert "secure" not in session_cookie(answer).lower()


def test_made_up_forwarded_addresses_do_not_spread_guesses(tmp_path: Path) -> None:
    with desk_behind(tmp_path, OUTSIDER, trusted="10.1.2.0/24") as client:
        answers = [
            sign_in(client, f"user{n}", WRONG, **{"X-Forwarded-For": f"203.0.113.{n}"})
            for n in range(ADDRESS.threshold + 1)
        ]
    assert answers[-1].status_code == 429  # counted against the real peer


def test_a_trusted_proxy_names_each_client_and_each_is_counted_on_its_own(
    tmp_path: Path,
) -> None:
    with desk_behind(tmp_path, PROXY, trusted="10.1.2.0/24") as client:
        spread = [
            sign_in(client, f"user{n}", WRONG, **{"X-Forwarded-For": f"203.0.113.{n}"})
            for n in range(ADDRESS.threshold + 1)
        ]
        assert {a.status_code for a in spread} == {401}  # twenty-one clients, one try each
        one = {"X-Forwarded-For": "198.51.100.77, 10.1.2.9"}  # through two of our proxies
        again = [sign_in(client, f"x{n}", WRONG, **one) for n in range(ADDRESS.threshold + 1)]
        assert again[-1].status_code == 429
        assert sign_in(client, "sue", PASSWORD, **{"X-Forwarded-For": "203.0.113.1"}).is_redirect


@pytest.mark.parametrize(
    ("peer", "scheme", "xff", "xfp", "expected"),
    [
        pytest.param(OUTSIDER, "http", "1.2.3.4", "https", (OUTSIDER, False), id="untrusted"),
        pytest.param(OUTSIDER, "https", None, None, (OUTSIDER, True), id="direct-tls"),
        pytest.param(PROXY, "http", "192.0.2.8", "https", ("192.0.2.8", True), id="proxy"),
        pytest.param(
            PROXY, "http", "6.6.6.6, 192.0.2.8", "http", ("192.0.2.8", False), id="rightmost"
        ),
        pytest.param(
            PROXY, "http", "192.0.2.8, 10.1.2.7", None, ("192.0.2.8", False), id="two-proxies"
        ),
        pytest.param(PROXY, "http", "garbage", None, (PROXY, False), id="unreadable"),
        pytest.param(
            PROXY, "http", "[2001:db8::1]:443", None, ("2001:db8::1", False), id="v6-port"
        ),
        pytest.param(PROXY, "http", "192.0.2.8:1234", "HTTPS", ("192.0.2.8", True), id="v4-port"),
        pytest.param(
            "::ffff:10.1.2.3", "http", "192.0.2.8", None, ("192.0.2.8", False), id="mapped"
        ),
        pytest.param("fd00::5", "http", None, "https", ("fd00::5", True), id="v6-proxy"),
    ],
)
def test_forwarding_headers_are_read_only_from_trusted_peers(
    peer: str, scheme: str, xff: str | None, xfp: str | None, expected: tuple[str, bool]
) -> None:
    assert forwarded_client(peer, scheme, xff, xfp, TRUSTED) == Client(*expected)


@given(xff=st.text(max_size=60), xfp=st.text(max_size=20))
def test_an_untrusted_peer_is_always_itself_whatever_it_writes(xff: str, xfp: str) -> None:
    assert forwarded_client(OUTSIDER, "http", xff, xfp, TRUSTED) == Client(OUTSIDER, False)


@given(xff=st.text(max_size=60))
def test_a_trusted_peer_never_yields_an_address_that_is_not_an_ip(xff: str) -> None:
    ipaddress.ip_address(forwarded_client(PROXY, "http", xff, None, TRUSTED).address)


def test_trusted_proxies_must_be_cidrs() -> None:
    with pytest.raises(ConfigError, match=r"TAKEDOWN_TRUSTED_PROXIES: 'proxy\.example'"):
        load_settings({"TAKEDOWN_TRUSTED_PROXIES": "10.0.0.1, proxy.example"})
    assert load_settings({}).trusted_proxies == ()
