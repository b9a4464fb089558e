"""Fetching `image` URLs without letting callers reach our internal network (SSRF).

Rules, on every hop (redirects included, at most 3):
- the host must be on the allow-list (`FASHIONAI_FETCH_ALLOW_HOSTS`; "any host" is an explicit `*`; empty: no
  URL is fetched at all);
- every address the name resolves to must be public: loopback, private, link-local (cloud metadata), CGNAT,
  reserved, multicast, and IPv6 forms that embed or reach IPv4 (NAT64, 6to4, IPv4-mapped/-compatible/-translated)
  and site-local are refused, whatever the allow-list says;
- the one exception is an exact `host:port` in `FASHIONAI_FETCH_ALLOW_INTERNAL` (our own object store);
- the connection goes to the address that was checked: the name is resolved once and the socket dialled to that
  address (a pinned network backend), so a DNS answer that changes after the check (rebinding) changes nothing.

Every failure shows the caller one generic message, so the answers cannot map which internal ports or paths exist;
the specific reason goes to the service's own log.

The site uses the same rules (one implementation): `fetch_image` for the developer API's image URLs and
`post_checked` for its users' webhook receivers (editor/integrations/outbound.py builds the site's policies).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpcore

from fashionai.streams import TooLarge, read_capped

MAX_REDIRECTS = 3
GENERIC_ERROR = "image URL could not be fetched"

# Resolves (host, port) to addresses, in the order a connection would try them.
Resolver = Callable[[str, int], Awaitable[list[str]]]

# IPv6 ranges refused outright: each embeds an IPv4 address or reaches IPv4 through a gateway, so a "public"
# IPv6 address could lead to 127.0.0.1 or 169.254.169.254; site-local is deprecated but still routed by some.
_REFUSED_V6 = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "64:ff9b::/96",  # NAT64 well-known prefix
        "64:ff9b:1::/48",  # NAT64 local-use prefix
        "2002::/16",  # 6to4
        "::/96",  # IPv4-compatible (deprecated), also :: and ::1's neighbours
        "::ffff:0:0/96",  # IPv4-mapped
        "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
        "2001::/32",  # Teredo: the client's IPv4 address is inside
        "fec0::/10",  # site-local
    )
)


class FetchError(ValueError):
    """The URL was not fetched. The caller only ever sees GENERIC_ERROR; `reason` is for the operator's log."""

    def __init__(self, reason: str) -> None:
        super().__init__(GENERIC_ERROR)
        self.reason = reason


@dataclass(frozen=True)
class FetchPolicy:
    allow_hosts: tuple[str, ...] = ()
    allow_internal: frozenset[tuple[str, int]] = field(default_factory=frozenset)
    timeout: float = 15.0
    max_bytes: int = 15 * 1024 * 1024


def host_allowed(host: str, allow: Iterable[str]) -> bool:
    host = host.lower().rstrip(".")
    for pattern in allow:
        if pattern == "*" or pattern == host:
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
    return False


def is_public(address: str) -> bool:
    """True only for a globally routable unicast address that cannot lead back to an internal one."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and any(ip in net for net in _REFUSED_V6):
        return False
    # is_global excludes loopback, private, link-local (169.254.169.254 metadata), CGNAT, reserved, unspecified.
    return bool(ip.is_global and not ip.is_multicast)


async def system_resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Dials only (host, port) pairs the policy has checked, and dials them to the checked address."""

    def __init__(self) -> None:
        self.pins: dict[tuple[str, int], str] = {}
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        address = self.pins.get((host, port))
        if address is None:
            raise httpcore.ConnectError(f"{host}:{port} was not checked")
        return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are never fetched")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent on the request line
    address: str  # the checked address the connection goes to


async def _check(url: str, policy: FetchPolicy, resolve: Resolver) -> _Target:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise FetchError("malformed URL") from None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if scheme not in ("http", "https") or not host:
        raise FetchError(f"scheme {scheme!r} or host missing")
    if parts.username is not None or parts.password is not None:
        raise FetchError("URL carries credentials")
    port = port or (443 if scheme == "https" else 80)
    try:
        host.encode("ascii")
    except UnicodeEncodeError:
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise FetchError("host name is not valid") from None
    internal_ok = (host, port) in policy.allow_internal
    if not internal_ok and not host_allowed(host, policy.allow_hosts):
        raise FetchError(f"host {host!r} is not in FASHIONAI_FETCH_ALLOW_HOSTS")
    try:
        addresses = await resolve(host, port)
    except OSError:
        raise FetchError(f"host {host!r} could not be resolved") from None
    if not addresses:
        raise FetchError(f"host {host!r} has no address")
    if not internal_ok:
        refused = [a for a in addresses if not is_public(a)]
        if refused:
            raise FetchError(f"host {host!r} resolves to internal address {refused[0]}")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _Target(scheme=scheme, host=host, port=port, path=path, address=addresses[0])


# What httpcore raises when a connection could not be made or broke off (both fetch paths map it to one error).
CONNECTION_ERRORS = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.ConnectionNotAvailable,
)


async def fetch_image(url: str, policy: FetchPolicy, *, resolve: Resolver = system_resolve) -> bytes:
    """GET the URL under `policy` (up to 3 checked redirects) and return the body; FetchError on any problem."""
    backend = _PinnedBackend()
    timeouts = {"connect": policy.timeout, "read": policy.timeout, "write": policy.timeout, "pool": policy.timeout}
    try:
        async with (
            httpcore.AsyncConnectionPool(network_backend=backend, retries=0) as pool,
            asyncio.timeout(policy.timeout),  # the whole download, not per read
        ):
            for _ in range(MAX_REDIRECTS + 1):
                target = await _check(url, policy, resolve)
                backend.pins[(target.host, target.port)] = target.address
                request_url = httpcore.URL(
                    scheme=target.scheme.encode(),
                    host=target.host.encode(),
                    port=target.port,
                    target=target.path.encode(),
                )
                headers = [(b"Accept", b"image/*"), (b"User-Agent", b"fashionai")]
                async with pool.stream("GET", request_url, headers=headers, extensions={"timeout": timeouts}) as resp:
                    header_map = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in resp.headers}
                    if resp.status in (301, 302, 303, 307, 308) and "location" in header_map:
                        url = urljoin(url, header_map["location"])
                        continue
                    if resp.status != 200:
                        raise FetchError(f"answered HTTP {resp.status}")
                    stream = resp.aiter_stream()
                    return await read_capped(stream, limit=policy.max_bytes, declared=header_map.get("content-length"))
            raise FetchError("too many redirects")
    except TooLarge:
        raise FetchError(f"larger than {policy.max_bytes} bytes") from None
    except TimeoutError:
        raise FetchError(f"no complete answer within {policy.timeout:g} s") from None
    except CONNECTION_ERRORS as exc:
        raise FetchError(f"connection failed ({exc.__class__.__name__})") from None


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes  # at most `keep` bytes of the answer


async def post_checked(
    url: str,
    policy: FetchPolicy,
    *,
    body: bytes,
    headers: Iterable[tuple[str, str]],
    keep: int = 2048,
    resolve: Resolver = system_resolve,
) -> Answer:
    """POST `body` to the URL under `policy` (same checks and pinning as `fetch_image`), never following a
    redirect: a webhook receiver answers itself, and a redirect is only a way to reach somewhere else. Returns the
    status and the first `keep` bytes of the answer; FetchError when nothing could be sent or no answer came."""
    backend = _PinnedBackend()
    timeouts = {"connect": policy.timeout, "read": policy.timeout, "write": policy.timeout, "pool": policy.timeout}
    target = await _check(url, policy, resolve)
    backend.pins[(target.host, target.port)] = target.address
    request_url = httpcore.URL(
        scheme=target.scheme.encode(), host=target.host.encode(), port=target.port, target=target.path.encode()
    )
    sent = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    sent.append((b"Content-Length", str(len(body)).encode()))
    try:
        async with (
            httpcore.AsyncConnectionPool(network_backend=backend, retries=0) as pool,
            asyncio.timeout(policy.timeout),
        ):
            async with pool.stream(
                "POST", request_url, headers=sent, content=body, extensions={"timeout": timeouts}
            ) as resp:
                kept = bytearray()
                async for chunk in resp.aiter_stream():
                    kept += chunk[: max(0, keep - len(kept))]
                    if len(kept) >= keep:
                        break
                return Answer(status=resp.status, body=bytes(kept))
    except TimeoutError:
        raise FetchError(f"no answer within {policy.timeout:g} s") from None
    except CONNECTION_ERRORS as exc:
        raise FetchError(f"connection failed ({exc.__class__.__name__})") from None
