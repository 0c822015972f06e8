"""Outbound HTTP to URLs a tenant gave us (webhooks): check where it goes, then go only there.

A webhook URL is chosen by a customer, so without a check it can point the notifier at our
own network: the database, Kafka, a sidecar, or the cloud metadata service that hands out
credentials. The defence has three parts, all here:

- :func:`unsafe_reason` says why an address must not be reached: loopback, private,
  CGNAT, link-local, unspecified, multicast, reserved, documentation, benchmarking, the
  metadata addresses, and the IPv6 forms that carry an IPv4 address inside (IPv4-mapped,
  6to4, NAT64) judged by the address they carry; Teredo is refused whole. The tables are
  explicit rather than ``ipaddress``' ``is_private``/``is_global`` alone, because those
  changed in patch releases (gh-113171, 2024) and a security answer must not change with
  the interpreter; ``is_global`` is kept only as a last net.
- :func:`resolve_checked` resolves the host ONCE and refuses the URL if ANY address it
  resolves to is unsafe and not allow-listed (``WAYBILL_NOTIFIER_ALLOWED_TARGETS``,
  :class:`AllowList`): one bad answer among good ones is how rebinding attacks hide.
- :class:`CheckedTransport` connects to the address it checked, not to the name: it
  rewrites the request's host to that IP while the ``Host`` header keeps the name and TLS
  sends the name as SNI and verifies the certificate against it (httpcore's
  ``sni_hostname`` request extension). DNS asked a second time cannot answer differently
  because it is never asked a second time. Redirects are never followed: every request,
  redirected or not, goes through the same check, and :func:`checked_client` builds the
  client with ``follow_redirects=False``.

Why not a library: ``advocate`` wraps ``requests`` and has had no release since 2020;
``safehttpx`` only does GET and validates through Google's public DNS over the network;
``httpx-secure`` finds the address by opening a TCP connection to the unvalidated host
(so the probe itself reaches the internal address), checks only the one address it
connected to, and caches verdicts; ``drawbridge`` and ``egressweave`` are young 0.1
releases. What we need is ~200 lines over ``ipaddress`` and ``getaddrinfo`` that we can
test against a real server.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final

import httpx

from waybill.common.failures import DomainError, FailureType

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[Sequence[Address]]]
"""``(host, port) -> addresses``; tests pass their own to play a rebinding DNS server."""

DEFAULT_PORTS: Final = {"http": 80, "https": 443}

METADATA: Final = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
    )
)


def _table(*rows: tuple[str, str]) -> tuple[tuple[Network, str], ...]:
    return tuple((ipaddress.ip_network(net), reason) for net, reason in rows)


# Every IPv4 range that is not a public unicast destination (IANA special-purpose registry).
UNSAFE_V4: Final = _table(
    ("0.0.0.0/8", "unspecified"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "cgnat"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "reserved"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
)
# IPv6: the embedding prefixes (mapped, NAT64, 6to4) are handled before this table.
UNSAFE_V6: Final = _table(
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "reserved"),
    ("100::/64", "reserved"),
    ("2001::/32", "teredo"),
    ("2001:2::/48", "benchmarking"),
    ("2001:10::/28", "reserved"),
    ("2001:20::/28", "reserved"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("fc00::/7", "private"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "reserved"),
    ("ff00::/8", "multicast"),
)
GLOBAL_UNICAST_V6: Final = ipaddress.IPv6Network("2000::/3")
NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")


def unsafe_reason(address: Address | str) -> str | None:
    """Why ``address`` must not be reached from the notifier, or ``None`` if it is public."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if ip in METADATA:
        return "metadata"
    if isinstance(ip, ipaddress.IPv4Address):
        return _reason_in(ip, UNSAFE_V4) or (None if ip.is_global else "reserved")
    embedded = _embedded_v4(ip)
    if embedded is not None:
        form, inner = embedded
        inner_reason = unsafe_reason(inner)
        # A mapped address is never a real destination: an AAAA record holding one is a trick.
        if form == "ipv4-mapped" or inner_reason is not None:
            return f"{form} {inner_reason or 'address'} ({inner})"
        return None
    reason = _reason_in(ip, UNSAFE_V6)
    if reason is not None:
        return reason
    if ip.scope_id is not None:  # a zone index only makes sense on a local link
        return "link-local"
    if ip not in GLOBAL_UNICAST_V6 or not ip.is_global:
        return "reserved"
    return None


def _reason_in(ip: Address, table: Iterable[tuple[Network, str]]) -> str | None:
    return next((reason for net, reason in table if ip in net), None)


def _embedded_v4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    if ip.ipv4_mapped is not None:
        return "ipv4-mapped", ip.ipv4_mapped
    if ip.sixtofour is not None:
        return "6to4", ip.sixtofour
    if ip in NAT64:
        return "nat64", ipaddress.IPv4Address(ip.packed[-4:])
    return None


@dataclass(frozen=True)
class AllowList:
    """``WAYBILL_NOTIFIER_ALLOWED_TARGETS``: CIDRs or host names, each with an optional port.

    ``127.0.0.1/32`` allows 127.0.0.1 on every port and nothing else (127.0.0.2 stays
    refused); ``127.0.0.1/32:8080`` only that port; ``[::1]:8080`` or ``[fd00::/8]`` for
    IPv6 (a bare IPv6 address or network without brackets has no port); ``hooks.local:8443``
    allows whatever that name resolves to, on that port.
    """

    networks: tuple[tuple[Network, int | None], ...] = ()
    hosts: tuple[tuple[str, int | None], ...] = ()

    @classmethod
    def parse(cls, text: str) -> AllowList:
        """Parse the setting; a malformed entry raises ``ValueError`` so start-up fails."""
        networks: list[tuple[Network, int | None]] = []
        hosts: list[tuple[str, int | None]] = []
        for raw in text.split(","):
            entry = raw.strip()
            if not entry:
                continue
            target, port = _split_port(entry)
            try:
                networks.append((ipaddress.ip_network(target, strict=True), port))
            except ValueError:
                if not target or "/" in target or ":" in target or " " in target:
                    raise ValueError(f"not a CIDR or host name: {entry!r}") from None
                hosts.append((target.lower().rstrip("."), port))
        return cls(networks=tuple(networks), hosts=tuple(hosts))

    def permits(self, host: str, address: Address, port: int) -> bool:
        """Whether ``address`` (resolved from ``host``) may be reached on ``port``."""
        name = host.lower().rstrip(".")
        if any(h == name and p in (None, port) for h, p in self.hosts):
            return True
        return any(
            address.version == net.version and address in net and p in (None, port)
            for net, p in self.networks
        )


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):
        inside, bracket, rest = entry[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"malformed bracketed entry: {entry!r}")
        return inside, _port(rest[1:], entry) if rest else None
    if entry.count(":") == 1:
        target, _, port = entry.partition(":")
        return target, _port(port, entry)
    return entry, None


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"bad port in {entry!r}")
    return int(text)


class UnsafeTarget(DomainError):
    """The URL may not be called: a bad form (``address`` is None) or an unsafe address.

    A domain error so the notifier's API maps its code to 422 once, like any other rule;
    the same exception at delivery time is the attempt's ``unsafe_address``.
    """

    code: ClassVar[str] = "UNSAFE_WEBHOOK_URL"
    failure_type: ClassVar[FailureType] = FailureType.PERMANENT_INVALID_INPUT

    def __init__(self, reason: str, address: Address | None = None) -> None:
        super().__init__(
            reason if address is None else f"{reason}: {address}", extra={"reason": reason}
        )
        self.reason = reason
        self.address = address


class UnresolvableTarget(httpx.ConnectError):
    """The host did not resolve (error class ``dns``); still a ``ConnectError`` to httpx users."""


@dataclass(frozen=True)
class Target:
    """A checked URL: where the request goes, and the addresses it may connect to."""

    scheme: str
    host: str
    port: int
    addresses: tuple[Address, ...]


async def system_resolver(host: str, port: int) -> Sequence[Address]:
    """The OS resolver on the event loop's executor (``getaddrinfo`` blocks)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except (socket.gaierror, UnicodeError) as exc:
        # UnicodeError: the name cannot even be put to DNS (a label over 63 characters).
        raise UnresolvableTarget(f"cannot resolve {host!r}: {exc}") from exc
    return [ipaddress.ip_address(info[4][0]) for info in infos]


def parse_target_url(url: str | httpx.URL) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of a URL we may call: http(s), a host, no userinfo."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise UnsafeTarget(f"invalid URL: {exc}") from exc
    if parsed.scheme not in DEFAULT_PORTS:
        raise UnsafeTarget(f"scheme {parsed.scheme!r} is not http or https")
    if parsed.userinfo:
        raise UnsafeTarget("credentials in the URL are not accepted")
    if not parsed.host:
        raise UnsafeTarget("the URL has no host")
    port = DEFAULT_PORTS[parsed.scheme] if parsed.port is None else parsed.port
    if not 0 < port < 65536:  # httpx accepts any number here
        raise UnsafeTarget(f"port {port} is out of range")
    # The ASCII (IDNA) form: what DNS is asked and what TLS sends as SNI.
    return parsed.scheme, parsed.raw_host.decode("ascii"), port


async def resolve_checked(
    url: str | httpx.URL, allow: AllowList, *, resolver: Resolver = system_resolver
) -> Target:
    """Resolve the URL's host once; refuse it if any address is unsafe and not allowed."""
    scheme, host, port = parse_target_url(url)
    try:
        literal: Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    found = [literal] if literal is not None else await resolver(host, port)
    addresses = tuple(dict.fromkeys(found))
    if not addresses:
        raise UnresolvableTarget(f"{host!r} resolved to no address")
    for address in addresses:
        reason = unsafe_reason(address)
        if reason is not None and not allow.permits(host, address, port):
            raise UnsafeTarget(reason, address)
    return Target(scheme=scheme, host=host, port=port, addresses=addresses)


class CheckedTransport(httpx.AsyncBaseTransport):
    """Checks every request's URL, then connects to the checked address under the URL's name.

    One pool per (scheme, host, port): httpcore keys its pool by the connection's address,
    so a single pool would hand a TLS connection made for one name (its SNI and
    certificate) to a request for another name served from the same IP. The pools live as
    long as the transport (one per notifier process, a pool per endpoint host).
    """

    def __init__(
        self,
        allow: AllowList,
        *,
        resolver: Resolver = system_resolver,
        verify: ssl.SSLContext | str | bool = True,
        limits: httpx.Limits | None = None,
    ) -> None:
        self._allow = allow
        self._resolver = resolver
        self._verify = verify
        self._limits = limits or httpx.Limits(max_connections=10, max_keepalive_connections=5)
        self._pools: dict[tuple[str, str, int], httpx.AsyncHTTPTransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {}).get("connect")
        try:
            async with asyncio.timeout(timeout):
                target = await resolve_checked(request.url, self._allow, resolver=self._resolver)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"resolving {request.url.host!r} timed out") from exc
        extensions = dict(request.extensions)
        if target.scheme == "https":
            extensions["sni_hostname"] = target.host
        pool = self._pool(target)
        # Every address was checked; try them in resolver order until one accepts.
        for attempt, address in enumerate(target.addresses, start=1):
            pinned = httpx.Request(
                request.method,
                request.url.copy_with(host=str(address)),
                headers=request.headers,  # keeps the Host header of the original name
                stream=request.stream,
                extensions=extensions,
            )
            try:
                response = await pool.handle_async_request(pinned)
            except httpx.ConnectError:
                if attempt == len(target.addresses):
                    raise
                continue
            response.extensions["checked_address"] = address
            return response
        raise AssertionError("resolve_checked returns at least one address")

    def _pool(self, target: Target) -> httpx.AsyncHTTPTransport:
        key = (target.scheme, target.host, target.port)
        pool = self._pools.get(key)
        if pool is None:
            pool = httpx.AsyncHTTPTransport(verify=self._verify, limits=self._limits)
            self._pools[key] = pool
        return pool

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()


def checked_client(
    allow: AllowList,
    *,
    timeout: httpx.Timeout,
    resolver: Resolver = system_resolver,
    verify: ssl.SSLContext | str | bool = True,
) -> httpx.AsyncClient:
    """The one way to build a client for tenant URLs: checked transport, no redirects, no env.

    ``trust_env=False`` because a proxy from the environment would connect by name and
    undo the pinning (and ``.netrc`` credentials must not reach a tenant's server).
    """
    return httpx.AsyncClient(
        transport=CheckedTransport(allow, resolver=resolver, verify=verify),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )
