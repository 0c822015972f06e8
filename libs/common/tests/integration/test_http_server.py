"""On a real uvicorn server, an oversized streamed body is refused while it is still arriving."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from fastapi import APIRouter, Request

from waybill.common.http.app import create_app
from waybill.common.settings import WaybillSettings
from waybill.devstack.infra import free_port
from waybill.devstack.testing import eventually

CHUNK = b"x" * 64 * 1024


@pytest.fixture
async def server() -> AsyncIterator[tuple[int, list[Any]]]:
    written: list[Any] = []
    router = APIRouter()

    @router.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        body = await request.body()
        written.append(len(body))
        return {"bytes": len(body)}

    app = create_app(
        service="uploads", settings=WaybillSettings(), routers=[router], health_checks={}
    )
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    uv = uvicorn.Server(config)
    task = asyncio.create_task(uv.serve())
    try:
        # uvicorn exposes only a flag, no event to await
        await eventually(lambda: uv.started, timeout_s=10, interval_s=0.02, what="uvicorn up")
        yield port, written
    finally:
        uv.should_exit = True
        await task


async def _status_line(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(5):
        return await reader.readline()


async def test_a_chunked_body_over_1_mib_gets_413_before_the_upload_ends(server) -> None:
    port, written = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: application/octet-stream\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    # Send 1.5 MiB and keep the request open: the body never ends from the server's view.
    for _ in range(24):
        writer.write(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK))
        await writer.drain()
    status = await _status_line(reader)
    writer.close()
    assert status.startswith(b"HTTP/1.1 413"), status
    assert written == []


async def test_a_declared_length_over_1_mib_gets_413_without_sending_the_body(server) -> None:
    port, written = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2097152\r\n\r\n"
    )
    await writer.drain()
    status = await _status_line(reader)
    headers = (await reader.readuntil(b"\r\n\r\n")).lower()
    writer.close()
    assert status.startswith(b"HTTP/1.1 413"), status
    assert b"content-type: application/problem+json" in headers
    assert written == []


async def test_a_body_under_the_limit_is_served(server) -> None:
    import httpx

    port, written = server
    async with httpx.AsyncClient() as client:
        response = await client.post(f"http://127.0.0.1:{port}/upload", content=CHUNK * 8)
    assert response.status_code == 200
    assert written == [len(CHUNK) * 8]
