"""Rate limits key on an address nobody can make up, and on the account whatever the address."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from control.config import Settings
from control.http.app import create_app
from tests.conftest import PASSWORD, make_user

WRONG = "wrong-password-1"
WINDOW_SECONDS = 15 * 60
PROXY = "10.0.0.5"


def peer(address: str) -> dict:
    """The connection's own address, as the ASGI server reports it."""
    return {"scope_base": {"client": (address, 40000)}}


async def attempt(client, email, password=WRONG, *, address="192.0.2.1", headers=None):
    return await client.post(
        "/auth/login",
        json={"email": email, "password": password},
        headers=headers or {},
        **peer(address),
    )


def statuses(responses) -> list[int]:
    return sorted(response.status_code for response in responses)


@pytest.fixture
async def behind_proxy(db, settings, telephony_settings):
    """A client of an app that trusts the proxies in 10.0.0.0/8 and 192.0.2.200."""
    app = create_app(
        settings.model_copy(update={"trusted_proxies": "10.0.0.0/8, 192.0.2.200"}),
        telephony_settings,
    )
    # No `test_app()`: the session app has initialised the database connections already.
    yield app.test_client()
    await app.extensions["redis"].aclose()


async def test_made_up_forwarded_addresses_from_an_untrusted_peer_are_ignored(client):
    # Each attempt claims a fresh address and a fresh account: only the peer can key the limit.
    responses = await asyncio.gather(
        *(
            attempt(
                client,
                f"user{n}@example.com",
                headers={"X-Forwarded-For": f"198.51.100.{n}", "Forwarded": f"for=203.0.113.{n}"},
            )
            for n in range(16)
        )
    )
    assert statuses(responses) == [401] * 10 + [429] * 6
    # Another peer is another client.
    assert (await attempt(client, "other@example.com", address="192.0.2.2")).status_code == 401


async def test_an_ipv6_client_is_its_64_and_an_ipv4_client_its_address(client, behind_proxy):
    # Rotating addresses within one /64 (one subscriber's block) shares one budget...
    responses = await asyncio.gather(
        *(
            attempt(client, f"user{n}@example.com", address=f"2001:db8:1:2::{n:x}")
            for n in range(1, 17)
        )
    )
    assert statuses(responses) == [401] * 10 + [429] * 6
    other_host = await attempt(client, "a@example.com", address="2001:db8:1:2:ffff:1:2:3")
    assert other_host.status_code == 429
    # ...the next /64 is another client, and so is the IPv4 address next door.
    assert (await attempt(client, "b@example.com", address="2001:db8:1:3::1")).status_code == 401
    answers = await asyncio.gather(
        *(attempt(client, f"c{n}@example.com", address=f"198.51.100.{n}") for n in range(1, 13))
    )
    assert statuses(answers) == [401] * 12
    # Forwarded by a trusted proxy, an IPv6 client is keyed the same way.
    forwarded = await asyncio.gather(
        *(
            attempt(
                behind_proxy,
                f"proxied{n}@example.com",
                address=PROXY,
                headers={"X-Forwarded-For": f"2001:db8:9:9::{n:x}"},
            )
            for n in range(1, 13)
        )
    )
    assert statuses(forwarded) == [401] * 10 + [429] * 2


async def test_trusted_proxy_forwards_the_right_most_address_it_did_not_add(behind_proxy):
    # The client prepends a made-up address each time; the proxies append the real one.
    responses = await asyncio.gather(
        *(
            attempt(
                behind_proxy,
                f"user{n}@example.com",
                address=PROXY,
                headers={"X-Forwarded-For": f"198.51.100.{n}, 203.0.113.7, 10.1.2.3"},
            )
            for n in range(16)
        )
    )
    assert statuses(responses) == [401] * 10 + [429] * 6
    # The same client through RFC 7239 `Forwarded` (IPv4-with-port form) is the same client...
    forwarded = await attempt(
        behind_proxy,
        "user99@example.com",
        address=PROXY,
        headers={"Forwarded": 'for=198.51.100.1, for="203.0.113.7:5555";proto=https'},
    )
    assert forwarded.status_code == 429
    assert 0 < int(forwarded.headers["Retry-After"]) <= 60
    # ...while other clients behind the same proxy are not limited with it.
    others = [
        {"X-Forwarded-For": "203.0.113.8"},
        {"Forwarded": 'for="[2001:db8::1]:4711", for=192.0.2.200'},
        {"X-Forwarded-For": "203.0.113.7"},  # from an untrusted peer: the peer is the client
    ]
    addresses = [PROXY, PROXY, "192.0.2.77"]
    for headers, address in zip(others, addresses, strict=True):
        response = await attempt(
            behind_proxy, "someone@example.com", address=address, headers=headers
        )
        assert response.status_code == 401, headers


async def test_two_headers_naming_different_clients_key_on_the_proxy(behind_proxy):
    # A proxy writes one header and passes the other on, so one of them was made up: the
    # attempts share the proxy's own budget, however the made-up header varies.
    responses = await asyncio.gather(
        *(
            attempt(
                behind_proxy,
                f"user{n}@example.com",
                address=PROXY,
                headers={"X-Forwarded-For": "203.0.113.9", "Forwarded": f"for=198.51.100.{n}"},
            )
            for n in range(12)
        )
    )
    assert statuses(responses) == [401] * 10 + [429] * 2


async def test_ten_failures_lock_the_account_from_every_address(client):
    user, _ = await make_user("ada@example.com")
    failures = await asyncio.gather(
        *(attempt(client, "ada@example.com", address=f"198.51.100.{n}") for n in range(10))
    )
    assert statuses(failures) == [401] * 10
    # The right password, from an address never seen before, is refused until the window ends.
    locked = await attempt(client, "ADA@example.com", PASSWORD, address="203.0.113.50")
    assert locked.status_code == 429
    assert (await locked.get_json())["code"] == "RATE_LIMITED"
    assert 0 < int(locked.headers["Retry-After"]) <= WINDOW_SECONDS
    # The lock is the account's, not the address's: another account from there logs in.
    await make_user("bob@example.com")
    other = await attempt(client, "bob@example.com", PASSWORD, address="203.0.113.50")
    assert other.status_code == 200


async def test_successful_logins_do_not_count_towards_the_lock(client):
    await make_user("ada@example.com")
    for n in range(12):
        response = await attempt(client, "ada@example.com", PASSWORD, address=f"198.51.100.{n}")
        assert response.status_code == 200, n


async def test_attempts_sent_at_once_cannot_exceed_the_account_budget(client):
    await make_user("ada@example.com")
    responses = await asyncio.gather(
        *(attempt(client, "ada@example.com", address=f"198.51.100.{n}") for n in range(25))
    )
    assert statuses(responses) == [401] * 10 + [429] * 15


async def test_password_reset_requests_are_limited_per_account(client):
    # Every request counts, account or not, so a 429 tells nothing about which emails exist.
    responses = await asyncio.gather(
        *(
            client.post(
                "/auth/forgot-password",
                json={"email": "ghost@example.com"},
                **peer(f"198.51.100.{n}"),
            )
            for n in range(11)
        )
    )
    assert statuses(responses) == [200] * 10 + [429]
    limited = next(response for response in responses if response.status_code == 429)
    assert 0 < int(limited.headers["Retry-After"]) <= WINDOW_SECONDS
    other = await client.post(
        "/auth/forgot-password", json={"email": "casper@example.com"}, **peer("198.51.100.1")
    )
    assert other.status_code == 200


@pytest.mark.parametrize("value", ["not-an-address", "10.0.0.0/33", "example.com"])
def test_trusted_proxies_must_be_addresses_or_networks(settings, value):
    with pytest.raises(ValidationError, match="VOXLINE_TRUSTED_PROXIES"):
        Settings(**{**settings.model_dump(), "trusted_proxies": value})
