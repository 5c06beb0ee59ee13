"""Rate limiting backed by Redis; when Redis is down, limited routes refuse with a 503.

Fail-closed is the default, so nobody can guess passwords or mint call tokens unmetered while
Redis is down; routes marked `@fail_open` (`/health`, `/auth/refresh`) are let through.

Limits per route are per client address: the peer's, or, for a request from one of
`VOXLINE_TRUSTED_PROXIES`, the right-most forwarded address that is not a trusted proxy (what a
client writes into those headers itself is to the left of it). An IPv4 client is its address;
an IPv6 client is its /64, the block one subscriber is given, so rotating addresses within it
gains nothing. Limits per account (`AccountLimit`) hold whatever the address.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from quart import Quart, current_app, request
from quart_rate_limiter import MemoryStore, RateLimit, RateLimiter, RateLimitExceeded, rate_limit
from redis.asyncio import Redis

from control.config import IPNetwork
from control.errors import DomainError
from control.http.errors import APIError
from control.microbatch import MicroBatch
from control.outages import outage_of

logger = logging.getLogger(__name__)

KEY_PREFIX = "ratelimit:"
PER_MINUTE = timedelta(minutes=1)
FAIL_OPEN_ATTRIBUTE = "_voxline_rate_limit_fail_open"

# GCRA (the algorithm quart-rate-limiter uses) for several limits in one round trip: for each key
# in turn, read the theoretical arrival time, refuse if it is too far ahead, else move it on.
# Returns, per key, the seconds to wait, or "0". ARGV holds each key's interval and period.
# Times are Redis's own clock in whole microseconds: requests stamped by different processes (or
# stamped before they waited for the event loop) cannot skew each other, and no rounding can
# refuse the last request of a burst. Keys are checked in the order given, so two checks of one
# key in one call count as they would one after the other.
_GCRA = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local waits = {}
for index, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * index - 1])
  local period = tonumber(ARGV[2 * index])
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local limit = period - interval
  if tat - now > limit then
    waits[index] = tostring((tat - limit - now) / 1000000)
  else
    local expiry_ms = math.ceil(period / 1000) + 1000
    redis.call('SET', key, string.format('%d', tat + interval), 'PX', expiry_ms)
    waits[index] = '0'
  end
end
return waits
"""


# An account's failed attempts: reserve one before trying (so attempts sent at once cannot all
# pass the check), keep it if the attempt fails, give it back if it succeeds. Returns the seconds
# until the window ends when the account is at its limit, else 0. The window starts with the
# first attempt and is never extended, so a lockout ends when it says it will.
_RESERVE_ATTEMPT = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count >= tonumber(ARGV[1]) then
  local ttl = redis.call('TTL', KEYS[1])
  if ttl < 1 then ttl = 1 end
  return ttl
end
redis.call('INCR', KEYS[1])
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE_ATTEMPT = """
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then redis.call('DECR', KEYS[1]) end
return 0
"""


# Each request parses its peer's and its client's address several times (trusted? its key?):
# the addresses seen lately are parsed once (the parsed addresses are immutable). Only strings
# as short as an address are kept: what a client writes into a header is not stored whole.
# Whether an address is trusted is not cached: keyed on the proxies too, each look-up hashed
# every network, which cost more than checking the address against them.
CACHED_ADDRESS_LENGTH = 64


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if len(address) > CACHED_ADDRESS_LENGTH:
        return _parse_ip(address)
    return _cached_ip(address)


def _parse_ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


_cached_ip = lru_cache(maxsize=4096)(_parse_ip)


def _is_trusted(address: str, proxies: tuple[IPNetwork, ...]) -> bool:
    ip = _ip(address)
    return ip is not None and any(ip in network for network in proxies)


def _node(raw: str) -> str:
    """One hop of a forwarded chain, without quotes, brackets or port: `"[2001:db8::1]:80"`."""
    node = raw.strip().strip('"').strip()
    if node.startswith("["):
        node = node[1:].partition("]")[0]
    elif node.count(":") == 1:  # IPv4 with a port
        node = node.partition(":")[0]
    ip = _ip(node)
    return str(ip) if ip is not None else node.lower()


def _x_forwarded_for() -> list[str]:
    values = request.headers.getlist("X-Forwarded-For")
    return [_node(hop) for value in values for hop in value.split(",") if hop.strip()]


def _forwarded() -> list[str]:
    """The `for=` of each element of RFC 7239 `Forwarded` headers, oldest first."""
    hops = []
    for value in request.headers.getlist("Forwarded"):
        for element in value.split(","):
            pairs = (pair.strip().partition("=") for pair in element.split(";"))
            found = [raw for name, _, raw in pairs if name.strip().lower() == "for"]
            hops.append(_node(found[0]) if found else "unknown")
    return hops


def _client_of(chain: list[str], proxies: tuple[IPNetwork, ...]) -> str | None:
    for hop in reversed(chain):
        if not _is_trusted(hop, proxies):
            return hop
    return chain[0] if chain else None


def client_address() -> str:
    """The address a request comes from, as far as it can be trusted."""
    peer = request.remote_addr or "unknown"
    proxies = current_app.config["SETTINGS"].trusted_proxy_networks
    if not _is_trusted(peer, proxies):
        return peer
    by_header = {
        client
        for client in (
            _client_of(_x_forwarded_for(), proxies),
            _client_of(_forwarded(), proxies),
        )
        if client is not None
    }
    # A proxy writes one of the two headers and passes the other through untouched, so when
    # both name different clients one of them is the client's own invention: neither counts.
    return by_header.pop() if len(by_header) == 1 else peer


#: The prefix an IPv6 client is keyed by: a subscriber's own block, whatever address in it.
IPV6_CLIENT_PREFIX = 64


def client_key(address: str) -> str:
    """What a client's per-address limits are keyed on: an IPv4 address, an IPv6 /64."""
    ip = _ip(address)  # an IPv4-mapped IPv6 address is its IPv4 one
    if ip is None:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, IPV6_CLIENT_PREFIX), strict=False))
    return str(ip)


async def client_address_key() -> str:
    return client_key(client_address())


class AccountLimit:
    """At most `failures` failed attempts on one account per `window`, from any address.

    Once reached, every attempt (right or wrong) is refused with a 429 until the window ends.
    """

    def __init__(
        self, purpose: str, failures: int = 10, window: timedelta = timedelta(minutes=15)
    ) -> None:
        self.purpose = purpose
        self.failures = failures
        self.window = window

    def key(self, account: str) -> str:
        digest = hashlib.sha256(account.strip().lower().encode()).hexdigest()
        return f"{KEY_PREFIX}account:{self.purpose}:{digest}"

    @asynccontextmanager
    async def attempt(self, account: str, *, always_counts: bool = False) -> AsyncIterator[None]:
        """Run one attempt on `account`; an `APIError` or domain error inside counts as a failure.

        With `always_counts`, every attempt counts (for requests that cannot tell a failure
        without revealing whether the account exists).
        """
        redis = current_app.extensions["redis"]
        key = self.key(account)
        wait = int(
            await redis.eval(
                _RESERVE_ATTEMPT, 1, key, self.failures, int(self.window.total_seconds())
            )
        )
        if wait > 0:
            raise RateLimitExceeded(wait)
        try:
            yield
        except (APIError, DomainError):
            raise  # a failure: the reserved attempt stays counted
        except BaseException:
            await redis.eval(_RELEASE_ATTEMPT, 1, key)
            raise
        if not always_counts:
            await redis.eval(_RELEASE_ATTEMPT, 1, key)


def fail_open(view):
    """Let this route through unmetered when Redis is down (e.g. `/health` must answer)."""
    setattr(view, FAIL_OPEN_ATTRIBUTE, True)
    return view


@dataclass(frozen=True)
class _RouteLimit:
    """One limit of a route, as its every request checks it."""

    limit: RateLimit
    key_prefix: str  # quart-rate-limiter's key, less the client's part
    interval_us: int  # between two requests, in whole microseconds
    period_us: int


@dataclass(frozen=True)
class _RouteLimits:
    limits: tuple[_RouteLimit, ...]
    fail_open: bool


class RedisRateLimiter(RateLimiter):
    """quart-rate-limiter's decorators and keys, checked atomically in Redis: the checks of the
    requests that arrive together share one round trip (a round trip of its own was a third of
    what a `/health` request cost)."""

    def __init__(self, app: Quart, redis: Redis) -> None:
        super().__init__(app, key_function=client_address_key, store=MemoryStore())
        # Its store is never used: `_before_request` is replaced below, and its after-request
        # hook (which only read the store, to add headers) is not run.
        app.after_request_funcs[None].remove(self._after_request)
        # EVALSHA: the script's text is sent once, not with every call.
        self._gcra = redis.register_script(_GCRA)
        self._checks: MicroBatch[tuple[str, int, int], float] = MicroBatch(self._check_all)
        self._limits_of: dict[str, _RouteLimits] = {}

    async def _check_all(self, checks: list[tuple[str, int, int]]) -> list[float]:
        """Each (key, interval µs, period µs) checked and counted; the seconds each must wait."""
        waits = await self._gcra(
            keys=[key for key, _, _ in checks],
            args=[number for _, interval, period in checks for number in (interval, period)],
        )
        return [float(wait) for wait in waits]

    def _route_limits(self, endpoint: str) -> _RouteLimits:
        """The limits of the request's route, worked out at its first request (an endpoint's
        view and blueprint, so its limits, are fixed once the app serves)."""
        found = self._limits_of.get(endpoint)
        if found is not None:
            return found
        view = current_app.view_functions.get(endpoint)
        blueprint = current_app.blueprints.get(request.blueprint or "")
        limits = [] if view is None else self._get_limits_for_view_function(view, blueprint)
        found = _RouteLimits(
            limits=tuple(
                _RouteLimit(
                    limit=limit,
                    key_prefix=f"{KEY_PREFIX}{current_app.import_name}-{endpoint}-{limit.key}-",
                    interval_us=round(limit.inverse * 1_000_000),
                    period_us=round(limit.period.total_seconds() * 1_000_000),
                )
                for limit in limits
            ),
            fail_open=getattr(view, FAIL_OPEN_ATTRIBUTE, False),
        )
        self._limits_of[endpoint] = found
        return found

    async def _before_request(self) -> None:
        endpoint = request.endpoint
        if endpoint is None or not current_app.config["QUART_RATE_LIMITER_ENABLED"]:
            return  # no route matched (nothing to meter), or limits are off
        route = self._route_limits(endpoint)
        for route_limit in route.limits:
            limit = route_limit.limit
            skip = limit.skip_function or self.skip_function
            if skip is not None and await skip():
                continue
            client = await (limit.key_function or self.key_function)()
            key = route_limit.key_prefix + client
            try:
                wait = await self._checks((key, route_limit.interval_us, route_limit.period_us))
            except Exception as error:
                # Fail closed: the error handlers answer 503 naming Redis.
                if outage_of(error) is None or not route.fail_open:
                    raise
                logger.debug("rate limit of %s not checked: Redis is unavailable", request.path)
                return
            if wait > 0:
                raise RateLimitExceeded(max(1, math.ceil(wait)))


def init_rate_limiter(app: Quart, redis: Redis) -> None:
    RedisRateLimiter(app, redis)


def per_minute(limit: int):
    """`@per_minute(10)`: at most `limit` requests a minute from one client address."""
    return rate_limit(limit, PER_MINUTE)


__all__ = [
    "AccountLimit",
    "client_address",
    "fail_open",
    "init_rate_limiter",
    "per_minute",
    "rate_limit",
]
