"""Bodies through the balancer: big ones stream intact both ways, slow readers finish, 100-continue flows."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time

import pytest
from edgefleet_balancer.haproxy_config import HAProxyLimits

from tests.balancer.harness import BIG_CHUNK, Setup, pattern_digest, running

MB = 1024 * 1024


@pytest.mark.parametrize("size", [1 * MB, 128 * MB], ids=["1MB", "128MB"])
async def test_big_response_bodies_stream_intact(setup: Setup, size: int) -> None:
    digest, received = hashlib.sha256(), 0
    async with setup.session.get(f"{setup.url}/big/{size}") as response:
        assert response.status == 200
        async for chunk in response.content.iter_chunked(256 * 1024):
            digest.update(chunk)
            received += len(chunk)
    assert received == size
    assert digest.hexdigest() == pattern_digest(size)


@pytest.mark.parametrize("size", [1 * MB, 128 * MB], ids=["1MB", "128MB"])
async def test_big_request_bodies_reach_the_owner_intact(setup: Setup, size: int) -> None:
    path = f"/upload/{size}"

    async def body():  # type: ignore[no-untyped-def]
        sent = 0
        while sent < size:
            piece = BIG_CHUNK[: min(len(BIG_CHUNK), size - sent)]
            sent += len(piece)
            yield piece

    async with setup.session.put(setup.url + path, data=body(), headers={"Content-Length": str(size)}) as response:
        assert response.status == 200
        owner = response.headers["X-Edge"]
    assert setup.edges[owner].body_sizes[path] == size
    assert setup.edges[owner].bodies[path] == pattern_digest(size)


def slow_download(port: int, path: str, pause: float) -> tuple[bytes, bytes, float]:
    """GET with a small receive buffer, reading 16 KiB at a time with a pause between reads."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n".encode())
        started = time.monotonic()
        data = bytearray()
        while True:
            chunk = sock.recv(16 * 1024)
            if not chunk:
                break
            data += chunk
            time.sleep(pause)
        head, _, body = bytes(data).partition(b"\r\n\r\n")
        return head, body, time.monotonic() - started


async def test_a_slow_client_downloads_20mb_intact_past_every_timeout() -> None:
    # Client and server timeouts are inactivity timeouts: a reader that keeps reading is never cut off,
    # however long the whole download takes (here several times both timeouts).
    limits = HAProxyLimits(check_interval=0.2, client_timeout=1.0, server_timeout=1.0)
    async with running(1, limits=limits) as s:
        size = 20 * MB
        head, body, took = await asyncio.to_thread(slow_download, s.balancer.data_port, f"/big/{size}", 0.003)
        print(f"slow download took {took:.1f}s against 1s client and server timeouts")
        assert head.startswith(b"HTTP/1.1 200")
        assert len(body) == size
        assert hashlib.sha256(body).hexdigest() == pattern_digest(size)
        assert took > 2 * limits.client_timeout, "at least 1280 reads 3 ms apart: the download outlasts the timeouts"


async def test_expect_100_continue_upload_gets_its_interim_answer(setup: Setup) -> None:
    size = 256 * 1024
    reader, writer = await asyncio.open_connection("127.0.0.1", setup.balancer.data_port)
    writer.write(
        f"POST /upload/expect HTTP/1.1\r\nHost: shop\r\nContent-Length: {size}\r\n"
        "Expect: 100-continue\r\nConnection: close\r\n\r\n".encode()
    )
    await writer.drain()
    # The client waits for "100 Continue" before sending the body; without it, it would stall.
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert interim.startswith(b"HTTP/1.1 100"), interim
    writer.write(BIG_CHUNK * (size // len(BIG_CHUNK)))
    await writer.drain()
    final = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert final.startswith(b"HTTP/1.1 200"), final[:200]
    assert [e.body_sizes.get("/upload/expect") for e in setup.edges.values() if e.body_sizes] == [size]


async def test_aiohttp_clients_can_upload_with_expect(setup: Setup) -> None:
    async with setup.session.post(setup.url + "/upload/x", data=b"y" * 1000, expect100=True) as response:
        assert response.status == 200
