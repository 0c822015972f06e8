"""The checked transport connects to the address it checked, under the URL's own name.

Real local HTTP and HTTPS servers (asyncio, 127.0.0.1) record what reached them: the
request line, the ``Host`` header and, for TLS, the SNI name. The URLs use names that exist
in no DNS (``hooks.test``); the test passes a resolver, as a tenant's DNS server would
answer, so a request can only succeed if the transport connected to the checked address
rather than asking the system for the name again.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from waybill.common.http.outbound import (
    Address,
    AllowList,
    Resolver,
    UnsafeTarget,
    checked_client,
)

TIMEOUT = httpx.Timeout(5.0)
LOOPBACK_ONLY = AllowList.parse("127.0.0.1/32")


@dataclass
class Receiver:
    """What a local server saw: one entry per request, plus the TLS SNI names."""

    port: int
    requests: list[dict[str, str]] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)
    status: str = "200 OK"
    extra_headers: str = ""
    keep_alive: bool = False


async def _serve(
    receiver: Receiver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            break
        line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (h.partition(":") for h in header_lines if h)
        }
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        receiver.requests.append(
            {"line": line, "host": headers.get("host", ""), "body": body.decode()}
        )
        connection = "keep-alive" if receiver.keep_alive else "close"
        writer.write(
            f"HTTP/1.1 {receiver.status}\r\nContent-Length: 2\r\nConnection: {connection}\r\n"
            f"{receiver.extra_headers}\r\nok".encode()
        )
        await writer.drain()
        if not receiver.keep_alive:
            break
    writer.close()


@pytest.fixture
async def start_receiver() -> AsyncIterator[Callable[..., Awaitable[Receiver]]]:
    servers: list[asyncio.Server] = []

    async def start(host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> Receiver:
        receiver = Receiver(port=0)
        if tls is not None:
            tls.sni_callback = lambda _sock, name, _ctx: receiver.sni.append(name)
        server = await asyncio.start_server(lambda r, w: _serve(receiver, r, w), host, 0, ssl=tls)
        servers.append(server)
        receiver.port = server.sockets[0].getsockname()[1]
        return receiver

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def _resolver(*answers: str, calls: list[str] | None = None) -> Resolver:
    """A DNS server that answers each lookup with the next address (the last one repeats)."""
    queue = [ipaddress.ip_address(a) for a in answers]

    async def resolve(host: str, port: int) -> list[Address]:
        if calls is not None:
            calls.append(host)
        return [queue.pop(0) if len(queue) > 1 else queue[0]]

    return resolve


def _resolver_all(*answers: str) -> Resolver:
    """A DNS server that answers every lookup with all of ``answers``."""

    async def resolve(host: str, port: int) -> list[Address]:
        return [ipaddress.ip_address(a) for a in answers]

    return resolve


def _certificate(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for ``name`` only (no IP SAN): (server context, client context)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cafile=str(cert_path))
    return server, client


async def test_the_request_reaches_the_checked_address_with_the_original_host_header(
    start_receiver,
) -> None:
    receiver = await start_receiver()
    calls: list[str] = []
    async with checked_client(
        LOOPBACK_ONLY, timeout=TIMEOUT, resolver=_resolver("127.0.0.1", calls=calls)
    ) as client:
        response = await client.post(
            f"http://hooks.test:{receiver.port}/hook?x=1", content=b'{"type":"order.paid"}'
        )
    assert response.status_code == 200
    assert response.extensions["checked_address"] == ipaddress.ip_address("127.0.0.1")
    assert receiver.requests == [
        {
            "line": "POST /hook?x=1 HTTP/1.1",
            "host": f"hooks.test:{receiver.port}",
            "body": '{"type":"order.paid"}',
        }
    ]
    assert calls == ["hooks.test"]


async def test_a_rebinding_name_is_resolved_once_per_request_and_checked_each_time(
    start_receiver,
) -> None:
    """First answer 127.0.0.1 (allowed), next 127.0.0.2: the second attempt never connects."""
    receiver = await start_receiver()
    neighbour = await start_receiver(host="127.0.0.2")
    calls: list[str] = []
    resolver = _resolver("127.0.0.1", "127.0.0.2", calls=calls)
    async with checked_client(LOOPBACK_ONLY, timeout=TIMEOUT, resolver=resolver) as client:
        first = await client.get(f"http://rebind.test:{receiver.port}/")
        with pytest.raises(UnsafeTarget) as refused:
            await client.get(f"http://rebind.test:{neighbour.port}/")
    assert first.status_code == 200
    assert refused.value.address == ipaddress.ip_address("127.0.0.2")
    assert calls == ["rebind.test", "rebind.test"]
    assert len(receiver.requests) == 1
    assert neighbour.requests == []


async def test_when_the_first_checked_address_refuses_the_next_one_is_tried(
    start_receiver,
) -> None:
    receiver = await start_receiver()
    resolver = _resolver_all("127.0.0.3", "127.0.0.1")
    allow = AllowList.parse("127.0.0.0/8")
    async with checked_client(allow, timeout=TIMEOUT, resolver=resolver) as client:
        response = await client.get(f"http://two.test:{receiver.port}/")
    assert response.extensions["checked_address"] == ipaddress.ip_address("127.0.0.1")
    assert len(receiver.requests) == 1


async def test_localhost_is_refused_with_the_system_resolver_unless_allow_listed(
    start_receiver,
) -> None:
    receiver = await start_receiver()
    async with checked_client(AllowList(), timeout=TIMEOUT) as client:
        with pytest.raises(UnsafeTarget, match="loopback"):
            await client.get(f"http://localhost:{receiver.port}/")
    async with checked_client(LOOPBACK_ONLY, timeout=TIMEOUT) as client:
        response = await client.get(f"http://localhost:{receiver.port}/")
    assert response.status_code == 200
    assert [r["host"] for r in receiver.requests] == [f"localhost:{receiver.port}"]


async def test_a_redirect_is_returned_to_the_caller_and_never_followed(start_receiver) -> None:
    receiver = await start_receiver()
    receiver.status = "302 Found"
    receiver.extra_headers = "Location: http://169.254.169.254/latest/meta-data/\r\n"
    async with checked_client(LOOPBACK_ONLY, timeout=TIMEOUT) as client:
        response = await client.get(f"http://127.0.0.1:{receiver.port}/")
    assert response.status_code == 302
    assert len(receiver.requests) == 1


async def test_tls_sends_the_original_name_as_sni_and_verifies_the_certificate_against_it(
    start_receiver, tmp_path: Path
) -> None:
    server_tls, client_tls = _certificate(tmp_path, "hooks.test")
    receiver = await start_receiver(tls=server_tls)
    async with checked_client(
        LOOPBACK_ONLY, timeout=TIMEOUT, resolver=_resolver("127.0.0.1"), verify=client_tls
    ) as client:
        response = await client.post(f"https://hooks.test:{receiver.port}/hook", content=b"{}")
    assert response.status_code == 200
    assert receiver.sni == ["hooks.test"]
    assert receiver.requests[0]["host"] == f"hooks.test:{receiver.port}"


async def test_tls_refuses_a_certificate_for_another_name_at_the_checked_address(
    start_receiver, tmp_path: Path
) -> None:
    server_tls, client_tls = _certificate(tmp_path, "other.test")
    receiver = await start_receiver(tls=server_tls)
    async with checked_client(
        LOOPBACK_ONLY, timeout=TIMEOUT, resolver=_resolver("127.0.0.1"), verify=client_tls
    ) as client:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get(f"https://hooks.test:{receiver.port}/")
    assert receiver.requests == []


async def test_a_tls_connection_made_for_one_name_is_not_reused_for_another_at_the_same_address(
    start_receiver, tmp_path: Path
) -> None:
    """httpcore pools by address: one pool would lend hooks.test's connection to evil.test."""
    server_tls, client_tls = _certificate(tmp_path, "hooks.test")
    receiver = await start_receiver(tls=server_tls)
    receiver.keep_alive = True
    async with checked_client(
        LOOPBACK_ONLY, timeout=TIMEOUT, resolver=_resolver("127.0.0.1"), verify=client_tls
    ) as client:
        assert (await client.get(f"https://hooks.test:{receiver.port}/")).status_code == 200
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get(f"https://evil.test:{receiver.port}/")
        assert (await client.get(f"https://hooks.test:{receiver.port}/")).status_code == 200
    assert receiver.sni == ["hooks.test", "evil.test"]  # the kept-alive one served the third
    assert [r["host"] for r in receiver.requests] == [f"hooks.test:{receiver.port}"] * 2
