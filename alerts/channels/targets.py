"""Where a webhook may point: public addresses only (no SSRF into our own network).

Registration refuses loopback, private, link-local (the cloud metadata address 169.254.169.254),
shared, reserved and local names; delivery checks again after resolving, so a name that later
resolves inward (DNS rebinding) is refused too.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa")
Resolver = Callable[..., list[tuple[Any, ...]]]


class UnsafeTarget(ValueError):
    """The URL points somewhere a webhook must not go; the message says why."""


def check_webhook_target(
    url: str,
    *,
    allow_private: bool,
    require_resolution: bool,
    resolve: Resolver = socket.getaddrinfo,
) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeTarget("a webhook URL must be http or https")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise UnsafeTarget("a webhook URL needs a host")
    if allow_private:
        return
    literal = _ip(host)
    if literal is not None:
        _check_ip(literal, host)
        return
    if host == "localhost" or host.endswith(LOCAL_SUFFIXES) or "." not in host:
        raise UnsafeTarget(f"{host!r} is a local name, not a public address")
    try:
        infos = resolve(host, parts.port or (443 if parts.scheme == "https" else 80))
    except (socket.gaierror, UnicodeError, OSError) as error:
        if require_resolution:
            raise UnsafeTarget(f"{host!r} does not resolve") from error
        return  # unknown now (DNS down, not yet published): delivery checks again
    for info in infos:
        address = _ip(str(info[4][0]))
        if address is not None:
            _check_ip(address, host)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _check_ip(address: ipaddress.IPv4Address | ipaddress.IPv6Address, host: str) -> None:
    # is_global is False for loopback, private, link-local (metadata), shared (100.64/10),
    # reserved, documentation and unspecified ranges.
    if not address.is_global or address.is_multicast:
        raise UnsafeTarget(f"{host!r} is {address}, not a public address")
