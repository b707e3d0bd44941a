"""The httptools data port's limits and connection handling, over raw sockets: each bad input gets its
status and a closed connection, and nothing it sends reaches the origin."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest
from edgefleet_edge.server import Edge

from tests.edge.conftest import OriginStub, settings_for


@pytest.fixture
async def strict_edge(origin: OriginStub) -> AsyncIterator[Edge]:
    settings = dataclasses.replace(settings_for(origin), header_timeout=0.5, idle_timeout=1.0, max_connections=3)
    edge = Edge(settings)
    await edge.start()
    yield edge
    await edge.stop()


async def exchange(edge: Edge, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.data_port)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    return data


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(150)) + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 20_000 + b"\r\n\r\n", 431),
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
    ],
    ids=["long-target", "too-many-headers", "huge-header", "garbage", "bad-content-length"],
)
async def test_bad_request_gets_its_status_and_a_closed_connection(
    strict_edge: Edge, origin: OriginStub, raw: bytes, status: int
) -> None:
    response = await exchange(strict_edge, raw)
    assert status_of(response) == status
    assert b"Connection: close" in response
    assert origin.requests == []


async def test_slow_headers_are_cut_off(strict_edge: Edge, origin: OriginStub) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", strict_edge.data_port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and then nothing: a slowloris
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    assert status_of(data) == 408
    assert origin.requests == []


async def test_idle_keep_alive_connection_is_closed(strict_edge: Edge) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", strict_edge.data_port)
    assert await asyncio.wait_for(reader.read(), timeout=10) == b"", "closed without a word after idling"
    writer.close()


async def test_at_the_cap_the_longest_idle_connection_makes_room(strict_edge: Edge, origin: OriginStub) -> None:
    from aiohttp import web

    origin.routes["/x"] = lambda request: web.Response(text="x", headers={"Cache-Control": "max-age=60"})
    server = strict_edge._data_server
    assert server is not None
    held = [await asyncio.open_connection("127.0.0.1", strict_edge.data_port) for _ in range(3)]
    deadline = asyncio.get_running_loop().time() + 10
    while len(server.connections) < 3 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    try:
        data = await exchange(strict_edge, b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status_of(data) == 200
        assert await asyncio.wait_for(held[0][0].read(), timeout=10) == b"", "the oldest idle one was closed"
    finally:
        for _, w in held:
            w.close()


async def test_at_the_cap_with_every_connection_answering_a_new_one_gets_503(
    strict_edge: Edge, origin: OriginStub
) -> None:
    from aiohttp import web

    origin.routes["/slow"] = lambda request: web.Response(text="s")
    origin.delay = asyncio.Event()
    held = [await asyncio.open_connection("127.0.0.1", strict_edge.data_port) for _ in range(3)]
    for _, writer in held:
        writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    deadline = asyncio.get_running_loop().time() + 10
    while origin.count("/slow") < 3 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", strict_edge.data_port)
        data = await asyncio.wait_for(reader.read(), timeout=10)
        writer.close()
        assert status_of(data) == 503
    finally:
        origin.delay.set()
        for _, w in held:
            w.close()


async def test_pipelined_requests_are_answered_in_order(strict_edge: Edge, origin: OriginStub) -> None:
    from aiohttp import web

    cacheable = {"Cache-Control": "max-age=60"}
    for name in ("one", "two", "three"):
        origin.routes[f"/{name}"] = lambda request, n=name: web.Response(text=n, headers=cacheable)
    raw = b"".join(b"GET /%s HTTP/1.1\r\nHost: x\r\n\r\n" % n for n in (b"one", b"two", b"three"))
    raw += b"GET /one HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    data = await exchange(strict_edge, raw)
    bodies = [chunk.split(b"\r\n\r\n", 1)[1][:5].strip() for chunk in data.split(b"HTTP/1.1 ")[1:]]
    assert bodies == [b"one", b"two", b"three", b"one"]
