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
from urllib.parse import quote, urlsplit, urlunsplit

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


def normalise(url: str) -> str:
    """The URL as it will be stored and sent: the host in IDNA (ASCII), any non-ASCII character
    of the path and query percent-encoded (UTF-8), as a browser sends them.

    http.client sends a request line in ASCII only: a non-ASCII path raised
    UnicodeEncodeError at every try (issue 23). Whitespace and control characters are refused
    rather than guessed at (a request line cannot carry them).
    """
    url = url.strip()
    if any(not ch.isprintable() or ch.isspace() for ch in url):
        raise AddressRefused(
            "A webhook URL has no spaces or control characters; percent-encode them (%20)."
        )
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        ascii_host = host if host.isascii() else host.encode("idna").decode("ascii")
    except (ValueError, UnicodeError) as exc:
        raise AddressRefused(f"{url!r} is not a valid URL ({exc}).") from None
    netloc = parts.netloc
    if ascii_host != host:
        # hostname is lower-cased; the netloc keeps what was typed, port included.
        at = netloc.rfind("@") + 1
        rest = netloc[at:]
        colon = rest.rfind(":")
        port = rest[colon:] if colon != -1 and "]" not in rest[colon:] else ""
        netloc = netloc[:at] + ascii_host + port
    safe = "".join(chr(c) for c in range(0x21, 0x7F))
    return urlunsplit(
        (
            parts.scheme,
            netloc,
            quote(parts.path, safe=safe),
            quote(parts.query, safe=safe),
            quote(parts.fragment, safe=safe),
        )
    )


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


# IPv6 ranges that carry an IPv4 address inside them, and where it sits. A packet to one of
# them may end up at that IPv4 address (a NAT64 gateway, a 6to4 relay, a dual-stack host's own
# stack), so the address inside is what must be public (issue 23: [::127.0.0.1] and
# [64:ff9b::7f00:1] reached loopback). Python's is_global calls most of them global.
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated ::a.b.c.d
IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # SIIT ::ffff:0:a.b.c.d
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # the well-known prefix, RFC 6052
# Refused whole: local-use NAT64 (RFC 8215: the IPv4 address may sit anywhere in it) and
# site-local (deprecated by RFC 3879, still routed inside some networks).
NEVER = (ipaddress.IPv6Network("64:ff9b:1::/48"), ipaddress.IPv6Network("fec0::/10"))


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (mapped, compatible, translated, NAT64, 6to4,
    Teredo's server and client), or none."""
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip in IPV4_COMPATIBLE or ip in IPV4_TRANSLATED or ip in NAT64:
        return [low32]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        return list(ip.teredo)
    return []


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in net for net in NEVER):
            return False
        inner = embedded_ipv4(ip)
        if inner:
            # :: and ::1 are in ::/96 too; 0.0.0.0 and 0.0.0.1 are not global either.
            return all(v4.is_global and not v4.is_multicast for v4 in inner)
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
