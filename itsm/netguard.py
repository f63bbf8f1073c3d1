"""Where outbound webhooks may go (SSRF guard), shared by the subscription form (input) and the
webhook channel (send time), so a URL refused at send time is refused when it is typed."""

import ipaddress
import socket
import urllib.parse

from django.conf import settings
from django.utils.translation import gettext as _

# Cloud metadata endpoints are refused even if an operator allows their network.
METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("fd00:ec2::254"),
}
# NAT64 prefixes (RFC 6052 well-known, RFC 8215 local use): the last 32 bits are an IPv4 address.
NAT64_NETWORKS = [ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48")]


class RefusedTarget(ValueError):
    """The URL or address must not be reached; the message says why, for staff."""


class UnresolvableTarget(RefusedTarget):
    """The host name has no address (now): a send may try again later."""


def _allowed_networks():
    return [
        ipaddress.ip_network(cidr.strip(), strict=False)
        for cidr in getattr(settings, "NOTIFY_WEBHOOK_ALLOWED_NETWORKS", [])
        if cidr.strip()
    ]


def _embedded_ipv4(ip):
    """The IPv4 addresses an IPv6 address carries (mapped, 6to4, Teredo, NAT64): a router
    delivers to those, so they are judged too."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    embedded = [ip.ipv4_mapped, ip.sixtofour]
    if ip.teredo:
        embedded.extend(ip.teredo)
    if any(ip in network for network in NAT64_NETWORKS):
        embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return [v4 for v4 in embedded if v4 is not None]


def _publicly_routable(ip):
    return ip.is_global and not (
        ip.is_multicast or ip.is_reserved or getattr(ip, "is_site_local", False)
    )


def check_address(ip):
    """Raise RefusedTarget unless ``ip`` is globally routable (and so is every IPv4 address it
    embeds), or inside ``NOTIFY_WEBHOOK_ALLOWED_NETWORKS``. Metadata addresses never pass."""
    ip = ipaddress.ip_address(ip)
    candidates = [ip, *_embedded_ipv4(ip)]
    for candidate in candidates:
        if candidate in METADATA_ADDRESSES:
            raise RefusedTarget(_("refused: %(ip)s is a cloud metadata address") % {"ip": ip})
    if all(_publicly_routable(candidate) for candidate in candidates):
        return
    allowed = _allowed_networks()
    if any(ip in network for network in allowed):
        return
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    if mapped and any(mapped in network for network in allowed):
        return
    raise RefusedTarget(
        _("refused: %(ip)s is not a public address (allow it in NOTIFY_WEBHOOK_ALLOWED_NETWORKS)")
        % {"ip": ip}
    )


def split_url(url):
    """(scheme, host, port, path-with-query) of an http(s) URL; RefusedTarget otherwise."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:  # "Port out of range 0-65535", a bad IPv6 literal
        message = _("invalid URL %(url)s: %(error)s") % {"url": url, "error": exc}
        raise RefusedTarget(message) from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedTarget(_("not an http(s) URL: %(url)s") % {"url": url})
    if port == 0:
        raise RefusedTarget(_("invalid URL %(url)s: port 0") % {"url": url})
    port = port or (443 if parts.scheme == "https" else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.scheme, parts.hostname, port, path


def resolve_checked(host, port):
    """Every address ``host`` resolves to, each one checked (not just the first)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnresolvableTarget(
            _("cannot resolve %(host)s: %(error)s") % {"host": host, "error": exc}
        ) from exc
    addresses = [info[4][0] for info in infos]
    for address in addresses:
        check_address(address)
    return addresses


def check_url(url):
    """Refuse a webhook URL that could never be sent to: not http(s), a bad port, or a host
    that resolves to an address the guard refuses."""
    _scheme, host, port, _path = split_url(url)
    return resolve_checked(host, port)
