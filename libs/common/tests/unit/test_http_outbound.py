"""SSRF defence: which addresses a tenant's webhook URL may reach, and the allow-list.

The unsafe networks below are written out here, from the issue and the IANA special-purpose
registries, rather than read from the module: a range dropped from the module's table must
fail a test, not silently shrink it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waybill.common.failures import FailureType
from waybill.common.failures.classify import classify
from waybill.common.http.outbound import (
    Address,
    AllowList,
    Resolver,
    UnresolvableTarget,
    UnsafeTarget,
    resolve_checked,
    unsafe_reason,
)

PROPERTY = settings(max_examples=300, deadline=None)

UNSAFE_V4 = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
]
UNSAFE_V6 = [
    "::/128",
    "::1/128",
    "::ffff:0:0/96",
    "2001::/32",
    "2001:db8::/32",
    "2001:2::/48",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
]

# The table of the issue: each must be refused with the allow-list off.
ISSUE_TABLE = [
    ("http://127.0.0.1/hook", "loopback"),
    ("http://[::1]/hook", "loopback"),
    ("http://10.0.0.1/hook", "private"),
    ("http://172.16.0.1/hook", "private"),
    ("http://192.168.1.1/hook", "private"),
    ("http://100.64.0.1/hook", "cgnat"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://[::ffff:127.0.0.1]/hook", "ipv4-mapped loopback"),
    ("http://0.0.0.0/hook", "unspecified"),
    ("http://localhost:8080/hook", "loopback"),
]


def _addresses_in(networks: Sequence[str]) -> st.SearchStrategy[Address]:
    def pick(net: str) -> st.SearchStrategy[Address]:
        network = ipaddress.ip_network(net)
        first = int(network.network_address)
        return st.integers(first, first + network.num_addresses - 1).map(ipaddress.ip_address)

    return st.one_of([pick(net) for net in networks])


def _fixed(*answers: str) -> Resolver:
    async def resolve(host: str, port: int) -> list[Address]:
        return [ipaddress.ip_address(a) for a in answers]

    return resolve


@pytest.mark.parametrize(("url", "reason"), ISSUE_TABLE)
async def test_every_address_of_the_issue_table_is_refused_without_an_allow_list(
    url: str, reason: str
) -> None:
    with pytest.raises(UnsafeTarget) as refused:
        await resolve_checked(url, AllowList())
    assert refused.value.reason.startswith(reason)
    assert refused.value.address is not None


@pytest.mark.parametrize("address", ["169.254.169.254", "fd00:ec2::254", "100.100.100.200"])
def test_cloud_metadata_addresses_are_named_as_such(address: str) -> None:
    assert unsafe_reason(address) == "metadata"


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("2002:7f00:1::1", "6to4 loopback"),  # 6to4 of 127.0.0.1
        ("2002:a00:1::", "6to4 private"),  # 6to4 of 10.0.0.1
        ("64:ff9b::a9fe:a9fe", "nat64 metadata"),  # NAT64 of 169.254.169.254
        ("64:ff9b::c0a8:101", "nat64 private"),  # NAT64 of 192.168.1.1
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "teredo"),
        ("fe80::1%eth0", "link-local"),
        ("192.0.2.10", "documentation"),
        ("2001:db8::1", "documentation"),
        ("198.18.0.1", "benchmarking"),
        ("255.255.255.255", "reserved"),
        ("::ffff:93.184.216.34", "ipv4-mapped"),  # never a real destination
    ],
)
def test_ipv6_forms_are_judged_by_the_ipv4_address_they_carry(address: str, reason: str) -> None:
    assert (unsafe_reason(address) or "").startswith(reason)


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "8.8.8.8",
        "1.1.1.1",
        "2606:4700::1",
        "2002:5db8:d822::1",
        "64:ff9b::808:808",
    ],
)
def test_public_addresses_and_their_6to4_and_nat64_forms_are_allowed(address: str) -> None:
    assert unsafe_reason(address) is None


async def test_public_targets_resolve_to_their_checked_addresses() -> None:
    target = await resolve_checked("https://93.184.216.34/hook", AllowList())
    assert target.addresses == (ipaddress.ip_address("93.184.216.34"),)
    assert (target.scheme, target.port) == ("https", 443)
    v6 = await resolve_checked("http://[2606:4700::1]:8080/", AllowList())
    assert (v6.host, v6.port) == ("2606:4700::1", 8080)


@given(_addresses_in(UNSAFE_V4))
@PROPERTY
def test_every_address_in_an_unsafe_ipv4_network_is_refused(address: Address) -> None:
    assert unsafe_reason(address) is not None


@given(st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address))
@PROPERTY
def test_every_ipv4_address_outside_the_unsafe_networks_is_allowed(
    address: ipaddress.IPv4Address,
) -> None:
    unsafe = any(address in ipaddress.ip_network(net) for net in UNSAFE_V4)
    metadata = str(address) == "100.100.100.200"
    assert (unsafe_reason(address) is None) is not (unsafe or metadata)


@given(_addresses_in(UNSAFE_V6))
@PROPERTY
def test_every_address_in_an_unsafe_ipv6_network_is_refused(address: Address) -> None:
    assert unsafe_reason(address) is not None


@given(_addresses_in(UNSAFE_V4))
@PROPERTY
def test_an_unsafe_ipv4_address_stays_refused_inside_mapped_6to4_and_nat64(
    address: Address,
) -> None:
    packed = int(address)
    mapped = ipaddress.IPv6Address((0xFFFF << 32) | packed)
    sixtofour = ipaddress.IPv6Address((0x2002 << 112) | (packed << 80))
    nat64 = ipaddress.IPv6Address((0x64FF9B << 96) | packed)
    for carrier in (mapped, sixtofour, nat64):
        assert unsafe_reason(carrier) is not None, carrier


async def test_a_name_is_refused_when_any_one_of_its_addresses_is_unsafe() -> None:
    with pytest.raises(UnsafeTarget) as refused:
        await resolve_checked(
            "https://hooks.example/", AllowList(), resolver=_fixed("93.184.216.34", "10.0.0.7")
        )
    assert refused.value.address == ipaddress.ip_address("10.0.0.7")


async def test_a_name_that_resolves_to_nothing_is_a_dns_failure() -> None:
    with pytest.raises(UnresolvableTarget):
        await resolve_checked("https://hooks.example/", AllowList(), resolver=_fixed())
    with pytest.raises(UnresolvableTarget):
        await resolve_checked("https://no-such-host.invalid/", AllowList())


@pytest.mark.parametrize(
    "url",
    [
        "ftp://93.184.216.34/",
        "file:///etc/passwd",
        "http://user:pw@93.184.216.34/",
        "http:///x",
        "http://93.184.216.34:0/",
        "http://93.184.216.34:65536/",
        "http://[::1/",
    ],
)
async def test_only_plain_http_and_https_urls_without_credentials_are_accepted(url: str) -> None:
    with pytest.raises(UnsafeTarget) as refused:
        await resolve_checked(url, AllowList())
    assert refused.value.address is None


@pytest.mark.parametrize("url", ["http://2130706433/", "http://0x7f.1/", "http://127.1/"])
async def test_legacy_spellings_of_loopback_are_refused(url: str) -> None:
    with pytest.raises(UnsafeTarget, match="loopback"):
        await resolve_checked(url, AllowList())


async def test_an_internationalised_name_is_resolved_and_checked_in_its_ascii_form() -> None:
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[Address]:
        asked.append(host)
        return [ipaddress.ip_address("93.184.216.34")]

    target = await resolve_checked("https://bücher.example/hook", AllowList(), resolver=resolve)
    assert asked == ["xn--bcher-kva.example"] and target.host == "xn--bcher-kva.example"


async def test_an_allow_listed_host_address_passes_and_its_neighbour_does_not() -> None:
    allow = AllowList.parse("127.0.0.1/32")
    target = await resolve_checked("http://127.0.0.1:8025/hook", allow)
    assert target.addresses == (ipaddress.ip_address("127.0.0.1"),)
    with pytest.raises(UnsafeTarget, match=r"127\.0\.0\.2"):
        await resolve_checked("http://127.0.0.2:8025/hook", allow)
    with pytest.raises(UnsafeTarget, match="ipv4-mapped"):
        await resolve_checked("http://[::ffff:127.0.0.1]:8025/hook", allow)


def test_allow_list_entries_carry_an_optional_port() -> None:
    allow = AllowList.parse(
        " 127.0.0.1/32, 10.0.0.0/8:8443 ,[::1]:8080,fd00::/8, hooks.local:9000,,"
    )
    loopback = ipaddress.ip_address("127.0.0.1")
    assert allow.permits("127.0.0.1", loopback, 1)
    assert allow.permits("127.0.0.1", loopback, 65535)
    assert allow.permits("x", ipaddress.ip_address("10.1.2.3"), 8443)
    assert not allow.permits("x", ipaddress.ip_address("10.1.2.3"), 443)
    assert allow.permits("::1", ipaddress.ip_address("::1"), 8080)
    assert not allow.permits("::1", ipaddress.ip_address("::1"), 80)
    assert allow.permits("x", ipaddress.ip_address("fd12::1"), 80)
    assert allow.permits("Hooks.Local.", ipaddress.ip_address("192.168.7.7"), 9000)
    assert not allow.permits("hooks.local", ipaddress.ip_address("192.168.7.7"), 9001)
    assert not allow.permits("other.local", ipaddress.ip_address("192.168.7.7"), 9000)


@pytest.mark.parametrize(
    "text", ["10.0.0.1/8", "[::1", "[::1]x", "127.0.0.1:0", "host:port", "a b", "10.0.0.0/33"]
)
def test_a_malformed_allow_list_entry_fails_at_start_up(text: str) -> None:
    with pytest.raises(ValueError):
        AllowList.parse(text)


async def test_an_allow_listed_name_may_resolve_to_private_addresses_on_its_port() -> None:
    allow = AllowList.parse("hooks.internal:8443")
    resolver = _fixed("10.9.8.7")
    target = await resolve_checked("https://hooks.internal:8443/", allow, resolver=resolver)
    assert target.addresses == (ipaddress.ip_address("10.9.8.7"),)
    with pytest.raises(UnsafeTarget):
        await resolve_checked("https://hooks.internal/", allow, resolver=resolver)


async def test_a_refusal_is_a_permanent_domain_error_the_api_maps_to_unsafe_webhook_url() -> None:
    with pytest.raises(UnsafeTarget) as refused:
        await resolve_checked("http://10.0.0.1/", AllowList())
    assert refused.value.code == "UNSAFE_WEBHOOK_URL"
    assert refused.value.extra == {"reason": "private"}
    assert classify(refused.value).type is FailureType.PERMANENT_INVALID_INPUT


async def test_a_name_dns_cannot_carry_is_unresolvable_not_a_crash():
    from waybill.common.http.outbound import AllowList, UnresolvableTarget, resolve_checked

    with pytest.raises(UnresolvableTarget):
        await resolve_checked("https://" + "0" * 300 + "/hook", AllowList.parse(""))
