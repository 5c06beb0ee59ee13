"""The outbound-address policy (SSRF) and the one pinned resolution every HTTP client uses.

Custom functions, webhook deliveries and an agent's own LLM endpoint may reach only public
addresses (unless private ones are allowed). A URL is checked before a request, and the
addresses a client connects to are the very ones `resolve_allowed` approved, so a DNS answer
that changes between the check and the connection (DNS rebinding) cannot slip through. The
adapters for aiohttp (`pinned_resolver`) and httpx (`pinned_http_transport`) import their
library on first use: this module itself needs only the standard library.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from functools import cache
from typing import Any
from urllib.parse import urlsplit

#: One answer of `getaddrinfo`: (family, type, proto, canonname, sockaddr).
AddressInfo = tuple[Any, ...]


class URLNotAllowedError(ValueError):
    """A URL or address that the outbound-address (SSRF) policy refuses."""


ALLOWED_URL_SCHEMES = ("http", "https")


def address_allowed(address: str, allow_private: bool) -> bool:
    """Whether an IP address may be the target of an outbound request.

    Private, loopback, link-local, multicast, reserved, unspecified and other non-global
    addresses are refused unless `allow_private` is set. IPv4-mapped and 6to4/Teredo IPv6
    addresses are judged by the IPv4 address they carry.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return False
    if allow_private:
        return True
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        if ip.sixtofour is not None:
            candidates.append(ip.sixtofour)
        if ip.teredo is not None:
            candidates.extend(ip.teredo)
    for candidate in candidates:
        if (
            candidate.is_private
            or candidate.is_loopback
            or candidate.is_link_local
            or candidate.is_multicast
            or candidate.is_reserved
            or candidate.is_unspecified
            or not candidate.is_global
        ):
            return False
    return True


def _split_url(url: str) -> tuple[str, int]:
    """Check scheme and host syntax; return (host, port)."""
    if not isinstance(url, str) or not url.strip():
        raise URLNotAllowedError("the URL is empty")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as e:
        raise URLNotAllowedError(f"the URL {url!r} is malformed: {e}") from e
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_URL_SCHEMES:
        raise URLNotAllowedError(
            f"the URL scheme {parts.scheme or '(none)'!r} is not allowed; use http or https"
        )
    host = parts.hostname
    if not host:
        raise URLNotAllowedError(f"the URL {url!r} has no host")
    if literal_ip(host) is None:
        try:
            host.encode("idna")  # what getaddrinfo does first: it raises UnicodeError, not OSError
        except UnicodeError as e:
            raise URLNotAllowedError(f"the host {host!r} is not a valid host name") from e
    return host, port or (443 if scheme == "https" else 80)


def _check_addresses(host: str, addresses: list[str], allow_private: bool) -> None:
    if not addresses:
        raise URLNotAllowedError(f"the host {host!r} does not resolve to any address")
    for address in addresses:
        if not address_allowed(address, allow_private):
            where = f"the address {address}" if host == address else f"{host!r} ({address})"
            raise URLNotAllowedError(
                f"{where} is a private, loopback or reserved address; "
                "only public addresses may be called"
            )


def literal_ip(host: str) -> str | None:
    """The host as a normalised IP address when it is one (an IPv6 zone id dropped), else None."""
    try:
        return str(ipaddress.ip_address(host.split("%", 1)[0]))
    except ValueError:
        return None


def _addresses(infos: list[AddressInfo]) -> list[str]:
    return [str(info[4][0]) for info in infos]


def _host_to_resolve(url: str, allow_private: bool) -> tuple[str, int] | None:
    """Check what needs no DNS; return (host, port) when the host name must still be resolved."""
    host, port = _split_url(url)
    literal = literal_ip(host)
    if literal is not None:
        _check_addresses(literal, [literal], allow_private)
        return None
    if allow_private:
        return None
    return host, port


def check_url_allowed(url: str, allow_private: bool) -> None:
    """Refuse URLs the platform must not call (blocking DNS; see the async variant).

    Only http and https are allowed. The host is resolved with getaddrinfo and every address it
    resolves to must be public, unless `allow_private`.

    Raises:
        URLNotAllowedError: with a message saying why.
    """
    target = _host_to_resolve(url, allow_private)
    if target is None:
        return
    host, port = target
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        raise URLNotAllowedError(f"the host {host!r} does not resolve: {e}") from e
    _check_addresses(host, _addresses(infos), allow_private)


async def resolve_allowed(
    host: str,
    port: int,
    allow_private: bool,
    *,
    family: int = socket.AF_UNSPEC,
    flags: int = 0,
) -> list[AddressInfo]:
    """Resolve `host` through the running loop and refuse it unless every address may be called.

    The one resolution behind every outbound connection: connect only to what it returns.

    Returns:
        The `getaddrinfo` answers (family, type, proto, canonname, sockaddr), all allowed.

    Raises:
        OSError: the host does not resolve (each client reports that its own way).
        URLNotAllowedError: it resolves to no address, or to one that is not allowed.
    """
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, family=family, type=socket.SOCK_STREAM, flags=flags
    )
    _check_addresses(host, _addresses(infos), allow_private)
    return infos


async def check_url_allowed_async(
    url: str, allow_private: bool, *, unresolvable_ok: bool = False
) -> None:
    """Async variant of `check_url_allowed`, resolving through the running loop.

    With `unresolvable_ok` (saving an agent), a host that does not resolve yet is accepted;
    the runtime checks again, after resolution, at call time.
    """
    target = _host_to_resolve(url, allow_private)
    if target is None:
        return
    host, port = target
    try:
        await resolve_allowed(host, port, allow_private)
    except OSError as e:
        if unresolvable_ok:
            return
        raise URLNotAllowedError(f"the host {host!r} does not resolve: {e}") from e


# --------------------------------------------------------------------------------------------
# Adapters: each client library connects through `resolve_allowed`
# --------------------------------------------------------------------------------------------


def pinned_resolver(allow_private: bool) -> Any:
    """An aiohttp resolver (`aiohttp.abc.AbstractResolver`) that answers with allowed addresses
    only; pass it to `aiohttp.TCPConnector(resolver=...)`.

    aiohttp skips the resolver for a literal IP in a URL: check the URL first
    (`check_url_allowed_async`).
    """
    return _pinned_resolver_type()(allow_private)


@cache
def _pinned_resolver_type() -> type:
    from aiohttp.abc import AbstractResolver, ResolveResult

    class PinnedResolver(AbstractResolver):
        def __init__(self, allow_private: bool) -> None:
            self._allow_private = allow_private

        async def resolve(
            self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
        ) -> list[ResolveResult]:
            # The flags and the answers' shape are those of aiohttp's own ThreadedResolver.
            infos = await resolve_allowed(
                host, port, self._allow_private, family=family, flags=socket.AI_ADDRCONFIG
            )
            results: list[ResolveResult] = []
            for address_family, _, proto, _, address in infos:
                if address_family == socket.AF_INET6:
                    if len(address) < 3:
                        continue  # this Python has no IPv6
                    if address[3]:  # a scope id: link-local IPv6 needs its zone in the host
                        resolved_host, resolved_port = await asyncio.get_running_loop().getnameinfo(
                            address, socket.NI_NUMERICHOST | socket.NI_NUMERICSERV
                        )
                    else:
                        resolved_host, resolved_port = address[:2]
                else:
                    resolved_host, resolved_port = address[:2]
                results.append(
                    ResolveResult(
                        hostname=host,
                        host=resolved_host,
                        port=int(resolved_port),
                        family=address_family,
                        proto=proto,
                        flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                    )
                )
            return results

        async def close(self) -> None:
            pass

    return PinnedResolver


def pinned_http_transport(allow_private: bool) -> Any:
    """An `httpx.AsyncHTTPTransport` whose every connection goes to an address
    `resolve_allowed` approved; pass it to `httpx.AsyncClient(transport=...)`.

    A refused or unresolvable host fails as `httpcore.ConnectError` (httpx's `ConnectError`).
    """
    import httpcore
    import httpx

    transport = httpx.AsyncHTTPTransport()
    # httpx takes no network backend of its own: its pool is rebuilt with the pinned one.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=50,
        max_keepalive_connections=50,
        keepalive_expiry=120,
        network_backend=_pinned_backend_type()(allow_private),
    )
    return transport


@cache
def _pinned_backend_type() -> type:
    import httpcore

    class PinnedBackend(httpcore.AsyncNetworkBackend):
        """Resolves the host itself, then connects to an address it checked: no second lookup
        for DNS rebinding to answer."""

        def __init__(self, allow_private: bool) -> None:
            self._inner = httpcore.AnyIOBackend()
            self._allow_private = allow_private

        async def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
            local_address: str | None = None,
            socket_options: Any = None,
        ) -> httpcore.AsyncNetworkStream:
            try:
                infos = await resolve_allowed(host, port, self._allow_private)
            except OSError as e:
                raise httpcore.ConnectError(f"{host!r} does not resolve: {e}") from e
            except URLNotAllowedError as e:
                raise httpcore.ConnectError(str(e)) from e
            error: Exception | None = None
            for address in dict.fromkeys(_addresses(infos)):
                try:
                    return await self._inner.connect_tcp(
                        address, port, timeout, local_address, socket_options
                    )
                except httpcore.ConnectError as e:
                    error = e
            assert error is not None
            raise error

        async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> Any:
            raise httpcore.ConnectError("unix sockets are not allowed")

        async def sleep(self, seconds: float) -> None:
            await self._inner.sleep(seconds)

    return PinnedBackend
