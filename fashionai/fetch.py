"""Fetching `image` URLs: timeout, size limit, and an optional host allow-list that also blocks internal addresses.

A public deployment must set the allow-list (FASHIONAI_FETCH_ALLOW_HOSTS): otherwise anyone with a key can make the
service request internal URLs (cloud metadata, admin ports) for them. With the list set, every hop (including
redirects) must name an allowed host AND resolve only to public addresses.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urljoin, urlsplit

import httpx

MAX_REDIRECTS = 3


class FetchError(ValueError):
    """The URL cannot be fetched; the message is shown to the API caller."""


def host_allowed(host: str, allow: tuple[str, ...]) -> bool:
    host = host.lower().rstrip(".")
    for pattern in allow:
        if pattern == "*" or pattern == host:
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
    return False


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # is_global excludes loopback, private, link-local (169.254.169.254 metadata), CGNAT, reserved, unspecified.
    return bool(ip.is_global and not ip.is_multicast)


async def _check_destination(url: str, allow: tuple[str, ...]) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError("image URL must be http(s) with a host")
    if not allow:
        return
    host = parts.hostname
    if not host_allowed(host, allow):
        raise FetchError(f"image host {host!r} is not in the service's allowed hosts")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
    except OSError:
        raise FetchError(f"image host {host!r} could not be resolved") from None
    addresses = {str(info[4][0]) for info in infos}
    if not addresses or not all(_public(a) for a in addresses):
        raise FetchError(f"image host {host!r} resolves to an internal address; refusing to fetch it")


async def fetch_image(url: str, *, allow: tuple[str, ...], timeout: float, max_bytes: int) -> bytes:
    """GET the URL (following up to 3 redirects, each checked), return the body; FetchError on any problem."""
    try:
        async with httpx.AsyncClient(follow_redirects=False, timeout=timeout, trust_env=False) as client:
            async with asyncio.timeout(timeout):  # total budget, not per read
                for _ in range(MAX_REDIRECTS + 1):
                    await _check_destination(url, allow)
                    async with client.stream("GET", url) as response:
                        if response.is_redirect and "location" in response.headers:
                            url = urljoin(url, response.headers["location"])
                            continue
                        if response.status_code != 200:
                            raise FetchError(f"image URL answered HTTP {response.status_code}")
                        declared = response.headers.get("content-length", "")
                        if declared.isdigit() and int(declared) > max_bytes:
                            raise FetchError(f"image is too large (more than {max_bytes} bytes)")
                        chunks: list[bytes] = []
                        size = 0
                        async for chunk in response.aiter_bytes():
                            size += len(chunk)
                            if size > max_bytes:
                                raise FetchError(f"image is too large (more than {max_bytes} bytes)")
                            chunks.append(chunk)
                        return b"".join(chunks)
                raise FetchError("image URL redirected too many times")
    except TimeoutError:
        raise FetchError(f"image URL did not answer within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"image URL could not be fetched ({exc.__class__.__name__})") from None
