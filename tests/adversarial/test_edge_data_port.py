"""The edge's data port under hostile or careless clients, over raw sockets on loopback (issue #19).

Every loop here is bounded in count; waits are for conditions, with deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from edgefleet_edge.server import Edge

from tests.edge.conftest import EdgeUnderTest, OriginStub, settings_for

# The edge suite's fixtures, imported so these tests run against the same edge.
from tests.edge.conftest import disk_edge as disk_edge
from tests.edge.conftest import edge as edge
from tests.edge.conftest import origin as origin


async def exchange(port: int, request: bytes, *, half_close: bool = False) -> bytes:
    """Send ``request`` on a new connection and read until the edge closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    if half_close:
        writer.write_eof()
    answer = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    return answer


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n", 400),
        (b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        (b"GET / HTTP/3.1\r\nHost: a\r\n\r\n", 505),
        (b"FOO / HTTP/1.1\r\nHost: a\r\n\r\n", 501),
        (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ],
    ids=["http-1.1-without-host", "two-hosts", "two-hosts-http-1.0", "http-2.0-request-line", "http-3.1",
         "unknown-method-token", "asterisk-outside-options"],
)  # fmt: skip
async def test_requests_that_break_http_1_1_message_rules_are_refused(
    edge: EdgeUnderTest, request_bytes: bytes, status: int
) -> None:
    answer = await exchange(edge.edge.data_port, request_bytes)
    assert status_of(answer) == status
    assert not edge.origin.requests, "nothing malformed reaches the origin"


async def test_a_plain_get_without_host_is_not_answered_from_the_hot_path(edge: EdgeUnderTest) -> None:
    edge.origin.routes["/hot"] = lambda request: web.Response(body=b"x", headers={"Cache-Control": "max-age=60"})
    await edge.get("/hot")
    keep_alive_without_host = b"GET /hot HTTP/1.1\r\nAccept: */*\r\n\r\n"
    answer = await exchange(edge.edge.data_port, keep_alive_without_host)
    assert status_of(answer) == 400


async def test_options_asterisk_is_answered_by_the_edge(edge: EdgeUnderTest) -> None:
    answer = await exchange(edge.edge.data_port, b"OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert status_of(answer) == 200 and b"Allow: " in answer
    assert not edge.origin.requests


async def test_a_client_that_half_closes_still_gets_its_miss(edge: EdgeUnderTest) -> None:
    edge.origin.routes["/half"] = lambda request: web.Response(body=b"whole", headers={"Cache-Control": "max-age=60"})
    answer = await exchange(edge.edge.data_port, b"GET /half HTTP/1.1\r\nHost: a\r\n\r\n", half_close=True)
    assert status_of(answer) == 200 and answer.endswith(b"\r\n\r\nwhole")


# ---- stalled clients and the connection cap ---------------------------------------------------------------


@pytest.fixture
async def small_edge(origin: OriginStub) -> AsyncIterator[Edge]:
    """An edge with a cap of 20 connections and short header and body timeouts."""
    settings = dataclasses.replace(settings_for(origin), max_connections=20, header_timeout=2.0)
    edge = Edge(settings)
    await edge.start()
    assert edge._data_server is not None
    edge._data_server.limits = dataclasses.replace(edge._data_server.limits, body_timeout=1.0)
    yield edge
    await edge.stop()


async def test_a_body_that_never_comes_is_timed_out(small_edge: Edge) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", small_edge.data_port)
    writer.write(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\nonly a little")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=10)  # the edge closes it: nothing holds it forever
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    assert status_of(answer) == 408


@pytest.mark.parametrize("stall", ["silent", "headers", "body"])
async def test_a_cap_filled_by_stalled_clients_does_not_lock_out_a_valid_one(
    small_edge: Edge, origin: OriginStub, stall: str
) -> None:
    origin.routes["/ok"] = lambda request: web.Response(body=b"served", headers={"Cache-Control": "max-age=60"})
    partial = {
        "silent": b"",
        "headers": b"GET /ok HTTP/1.1\r\nHost: a\r\n",
        "body": b"POST /ok HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nx",
    }[stall]
    stalled = []
    for _ in range(20):  # exactly the cap
        _, writer = await asyncio.open_connection("127.0.0.1", small_edge.data_port)
        writer.write(partial)
        await writer.drain()
        stalled.append(writer)
    server = small_edge._data_server
    assert server is not None
    deadline = asyncio.get_running_loop().time() + 10
    while len(server.connections) < 20 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    answer = await exchange(small_edge.data_port, b"GET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert status_of(answer) == 200 and answer.endswith(b"served"), "a stalled connection made room"
    for writer in stalled:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


# ---- Range amplification (RFC 9110 §14.2) -------------------------------------------------------------------


@pytest.mark.parametrize("size", [300_000, 3_000_000], ids=["memory-tier", "streamed-from-disk"])
async def test_overlapping_ranges_never_amplify_an_object(disk_edge: EdgeUnderTest, size: int) -> None:
    body = bytes(range(256)) * (size // 256)
    disk_edge.origin.routes["/big"] = lambda request: web.Response(body=body, headers={"Cache-Control": "max-age=60"})
    await disk_edge.get("/big")
    amplifying = "bytes=" + ",".join(["0-"] * 16)  # 53 bytes asking for the whole object 16 times
    whole = await disk_edge.get("/big", Range=amplifying)
    assert whole.status == 206 and int(whole.headers["Content-Length"]) == len(body)
    assert whole.headers["Content-Range"] == f"bytes 0-{len(body) - 1}/{len(body)}"
    assert await whole.read() == body
    overlapping = await disk_edge.get("/big", Range="bytes=0-99,50-149,1000-1099,1050-1199,2000-2000")
    assert overlapping.status == 206 and overlapping.headers["Content-Type"].startswith("multipart/byteranges")
    payload = await overlapping.read()
    assert payload.count(b"Content-Range: ") == 3, "overlapping parts were merged"
    assert body[0:150] in payload and body[1000:1200] in payload and body[2000:2001] in payload
    assert len(payload) < 150 + 200 + 1 + 3 * 200


# ---- access log -----------------------------------------------------------------------------------------------


async def test_every_request_leaves_one_json_line_in_the_access_log(edge: EdgeUnderTest) -> None:
    import json
    import os

    read_end, write_end = os.pipe()
    assert edge.edge.access_log is not None, "on by default"
    edge.edge.access_log.fd = write_end
    edge.origin.routes["/logged"] = lambda request: web.Response(
        body=b"x" * 10, headers={"Cache-Control": "max-age=60"}
    )
    await edge.get("/logged?q=%22quoted%22")  # a miss, through the general path
    await edge.get("/logged?q=%22quoted%22")  # a recognised hit
    await edge.get("/logged?q=%22quoted%22", If_None_Match='"other"')  # a hit on the general path
    await edge.get("/missing")  # the origin's 404
    edge.edge.access_log.flush()
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        entries = [json.loads(line) for line in pipe.read().splitlines()]
    assert [(e["method"], e["target"], e["status"], e["cache"]) for e in entries] == [
        ("GET", "/logged?q=%22quoted%22", 200, "MISS"),
        ("GET", "/logged?q=%22quoted%22", 200, "HIT"),
        ("GET", "/logged?q=%22quoted%22", 200, "HIT"),
        ("GET", "/missing", 404, "BYPASS"),
    ]
    assert entries[0]["origin_ms"] is not None and entries[1]["origin_ms"] is None
    assert all(e["client"] == "127.0.0.1" and e["bytes"] > 0 and e["ms"] >= 0 and e["time"].endswith("Z")
               for e in entries)  # fmt: skip
