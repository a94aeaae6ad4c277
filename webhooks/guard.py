"""The address guard: webhooks go to the internet, not into the control plane's own network.

A URL whose host resolves to a loopback, link-local, private, shared, reserved, multicast or
unspecified address is refused, unless ``CONTROLPLANE_WEBHOOK_ALLOW_PRIVATE`` is on (tests and
single-host setups). The check runs when a subscription is made and again before every send,
on the addresses the request then connects to (``resolve``): a name that resolved to a public
address yesterday and to 10.0.0.5 today is refused today, and the connection goes to the very
address that was checked, so a second lookup cannot swap it (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings


class AddressRefused(Exception):
    """The URL is malformed or points where webhooks may not go; the message is for people."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # with the query string
    address: str  # the checked IP address to connect to


def parse(url: str) -> tuple[str, str, int, str]:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise AddressRefused(f"{url!r} is not a valid URL ({exc}).") from None
    if parts.scheme not in ("http", "https"):
        raise AddressRefused("A webhook URL starts with https:// (or http://).")
    if not parts.hostname:
        raise AddressRefused("A webhook URL names a host.")
    if parts.username or parts.password:
        raise AddressRefused("Put no credentials in the URL; the signature authenticates us.")
    if parts.fragment:
        raise AddressRefused("A webhook URL has no #fragment.")
    port = port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port, path


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def resolve(url: str, *, allow_private: bool | None = None) -> Target:
    """Check ``url`` and return where to connect; raise ``AddressRefused`` otherwise.

    Every address the name resolves to must be public: refusing when any one is private
    stops a name that answers with both.
    """
    if allow_private is None:
        allow_private = settings.CONTROLPLANE_WEBHOOK_ALLOW_PRIVATE
    scheme, host, port, path = parse(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise AddressRefused(f"The host {host!r} does not resolve.") from None
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise AddressRefused(f"The host {host!r} does not resolve.")
    if not allow_private:
        private = [a for a in addresses if not is_public(a)]
        if private:
            raise AddressRefused(
                f"{host} resolves to {private[0]}, a loopback, link-local or private address; "
                "webhooks may only go there with CONTROLPLANE_WEBHOOK_ALLOW_PRIVATE=1."
            )
    return Target(scheme=scheme, host=host, port=port, path=path, address=addresses[0])
