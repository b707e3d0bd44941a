"""The hot path's request recogniser: it accepts only what the full parser would read the same way, and the
edge answers recognised requests with the same semantics as parsed ones."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator

import httptools
import pytest
from aiohttp import web
from edgefleet_edge.plain_request import PlainRequest, recognise_plain
from edgefleet_edge.server import Edge

from tests.edge.conftest import OriginStub, settings_for

RECOGNISED = [
    (b"GET /a.jpg HTTP/1.1\r\nHost: shop\r\n\r\n", (False, b"/a.jpg", None, None)),
    (b"HEAD /a.jpg HTTP/1.1\r\nHost: shop\r\n\r\n", (True, b"/a.jpg", None, None)),
    (
        b"GET /p/1.jpg?w=320 HTTP/1.1\r\nHost: shop\r\nAccept: image/avif,image/webp,*/*\r\n"
        b"Accept-Encoding: gzip, br\r\nUser-Agent: Mozilla/5.0\r\nConnection: keep-alive\r\n\r\n",
        (False, b"/p/1.jpg?w=320", "image/avif,image/webp,*/*", "gzip, br"),
    ),
    (b"GET /a HTTP/1.1\r\nHOST: shop\r\nACCEPT:  image/webp \r\n\r\n", (False, b"/a", "image/webp", None)),
]

NOT_RECOGNISED = [
    (b"GET /a HTTP/1.1\r\nHost: x\r\nAccept: image/png\r\nAccept: image/avif\r\n\r\n", "accept-on-two-lines"),
    (b"GET /a HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\naccept-encoding: br\r\n\r\n", "encoding-on-two-lines"),
    (b"GET /a HTTP/1.1\r\nAccept: */*\r\n\r\n", "no-host"),
    (b"GET /a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", "two-hosts"),
    (b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", "other-method"),
    (b"GET /a HTTP/1.0\r\nHost: x\r\n\r\n", "http-1.0"),
    (b"GET http://evil/a HTTP/1.1\r\nHost: x\r\n\r\n", "absolute-form"),
    (b"GET /a#frag HTTP/1.1\r\nHost: x\r\n\r\n", "fragment"),
    (b"GET /a HTTP/1.1\r\nHost: x\r\n", "incomplete"),
    (b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n", "pipelined"),
    (b"GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", "content-length"),
    (b"GET /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", "transfer-encoding"),
    (b"GET /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n", "space-before-colon"),
    (b"GET /a HTTP/1.1\r\nHost: x\r\n Transfer-Encoding: chunked\r\n\r\n", "obs-fold"),
    (b"GET /a HTTP/1.1\r\nHost: x\nTransfer-Encoding: chunked\r\n\r\n", "bare-lf"),
    (b"GET /a HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\n\r\n", "range"),
    (b'GET /a HTTP/1.1\r\nHost: x\r\nIf-None-Match: "x"\r\n\r\n', "conditional"),
    (b"GET /a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n\r\n", "credentials"),
    (b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "connection-close"),
    (b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", "two-connections"),
    (b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", "upgrade"),
    (b"GET /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n", "expect"),
    (b"GET /a HTTP/1.1\r\nHost: x\r\nX-Bad\x01: v\r\n\r\n", "control-in-name"),
    (b"GET /a HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", "bare-cr"),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", "too-long"),
    (b"GET /a HTTP/1.1\r\nHost: x\r\n" + b"X: v\r\n" * 120 + b"\r\n", "too-many-headers"),
]


class _Parsed:
    """What llhttp reads from the same bytes, as the httptools adapter collects it."""

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.complete = 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_message_complete(self) -> None:
        self.complete += 1


@pytest.mark.parametrize(("raw", "expected"), RECOGNISED, ids=["minimal", "head", "browser", "case-and-spaces"])
def test_recognised_request_reads_as_the_parser_reads_it(raw: bytes, expected: PlainRequest) -> None:
    assert recognise_plain(raw) == expected
    head, target, accept, accept_encoding = expected
    parsed = _Parsed()
    parser = httptools.HttpRequestParser(parsed)
    parser.feed_data(raw)
    assert parsed.complete == 1
    assert parser.get_method() == (b"HEAD" if head else b"GET")
    assert parsed.url == target
    assert parser.should_keep_alive()
    # The first occurrence wins, as in the adapter's mapping; OWS is not part of a value (RFC 9110 §5.5).
    first = {name: value.decode("latin-1").strip(" \t") for name, value in reversed(parsed.headers)}
    assert first.get(b"accept") == accept
    assert first.get(b"accept-encoding") == accept_encoding


@pytest.mark.parametrize(("raw", "why"), NOT_RECOGNISED, ids=[why for _, why in NOT_RECOGNISED])
def test_anything_outside_the_plain_subset_is_left_to_the_parser(raw: bytes, why: str) -> None:
    assert recognise_plain(raw) is None


# ---- over HTTP ---------------------------------------------------------------------------------------


@pytest.fixture
async def quick_idle_edge(origin: OriginStub) -> AsyncIterator[Edge]:
    edge = Edge(dataclasses.replace(settings_for(origin), idle_timeout=1.0))
    await edge.start()
    yield edge
    await edge.stop()


async def read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
    return head, await asyncio.wait_for(reader.readexactly(length), timeout=10)


async def test_recognised_requests_get_the_variant_their_accept_header_selects(
    quick_idle_edge: Edge, origin: OriginStub
) -> None:
    def negotiate(request: web.Request) -> web.Response:
        body = b"webp" if "image/webp" in request.headers.get("Accept", "") else b"jpeg"
        return web.Response(body=body, headers={"Cache-Control": "max-age=60", "Vary": "Accept"})

    origin.routes["/photo.jpg"] = negotiate
    reader, writer = await asyncio.open_connection("127.0.0.1", quick_idle_edge.data_port)
    try:
        seen = []
        for accept in (b"image/webp,*/*", b"image/jpeg", b"image/webp,*/*", b"image/jpeg"):
            writer.write(b"GET /photo.jpg HTTP/1.1\r\nHost: shop\r\nAccept: %s\r\n\r\n" % accept)
            head, body = await read_response(reader)
            seen.append((re.search(rb"X-Cache: (\w+)", head).group(1), body))  # type: ignore[union-attr]
    finally:
        writer.close()
    assert seen == [(b"MISS", b"webp"), (b"MISS", b"jpeg"), (b"HIT", b"webp"), (b"HIT", b"jpeg")]
    assert origin.count("/photo.jpg") == 2


async def test_connection_idle_after_recognised_hits_is_still_closed(quick_idle_edge: Edge, origin: OriginStub) -> None:
    origin.routes["/a"] = lambda request: web.Response(body=b"a", headers={"Cache-Control": "max-age=60"})
    reader, writer = await asyncio.open_connection("127.0.0.1", quick_idle_edge.data_port)
    for _ in range(3):
        writer.write(b"GET /a HTTP/1.1\r\nHost: shop\r\n\r\n")
        await read_response(reader)
    assert await asyncio.wait_for(reader.read(), timeout=10) == b"", "closed after idling"
    writer.close()


async def test_recognised_hits_are_counted_in_the_metrics(quick_idle_edge: Edge, origin: OriginStub) -> None:
    import aiohttp

    origin.routes["/counted"] = lambda request: web.Response(body=b"x" * 100, headers={"Cache-Control": "max-age=60"})
    reader, writer = await asyncio.open_connection("127.0.0.1", quick_idle_edge.data_port)
    for _ in range(5):  # one miss, four hits
        writer.write(b"GET /counted HTTP/1.1\r\nHost: shop\r\n\r\n")
        await read_response(reader)
    writer.close()
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"http://127.0.0.1:{quick_idle_edge.admin_port}/metrics", headers={"Authorization": "Bearer admin-secret"}
        ) as response,
    ):
        text = await response.text()
    hits = re.search(r'edgefleet_edge_requests_total\{cache_status="hit",code="200"\} ([0-9.]+)', text)
    served = re.search(r"edgefleet_edge_bytes_served_total ([0-9.e+]+)", text)
    assert hits is not None and float(hits.group(1)) == 4
    assert served is not None and float(served.group(1)) == 500
    # Every hit is in the latency histogram, once, in a bucket: the +Inf bucket and the count agree, and a hit
    # answered in process takes well under the largest finite bound (10 s).
    metric = "edgefleet_edge_request_duration_seconds"
    count = re.search(metric + r'_count\{cache_status="hit"\} ([0-9.]+)', text)
    infinite = re.search(metric + r'_bucket\{cache_status="hit",le="\+Inf"\} ([0-9.]+)', text)
    largest = re.search(metric + r'_bucket\{cache_status="hit",le="10.0"\} ([0-9.]+)', text)
    total = re.search(metric + r'_sum\{cache_status="hit"\} ([0-9.e-]+)', text)
    assert count is not None and infinite is not None and largest is not None and total is not None
    assert float(count.group(1)) == float(infinite.group(1)) == float(largest.group(1)) == 4
    assert float(total.group(1)) > 0


async def test_client_that_never_reads_its_answers_stops_being_read(quick_idle_edge: Edge, origin: OriginStub) -> None:
    body = b"x" * 512 * 1024
    origin.routes["/big.jpg"] = lambda request: web.Response(body=body, headers={"Cache-Control": "max-age=60"})
    reader, writer = await asyncio.open_connection("127.0.0.1", quick_idle_edge.data_port)
    writer.write(b"GET /big.jpg HTTP/1.1\r\nHost: shop\r\n\r\n")
    await read_response(reader)  # stored; from now on every request is a hit
    (connection,) = quick_idle_edge._data_server.connections  # type: ignore[union-attr]
    transport = connection.transport
    assert transport is not None
    try:
        for _ in range(400):  # 200 MB of answers if the edge kept reading; one request per write, never read
            writer.write(b"GET /big.jpg HTTP/1.1\r\nHost: shop\r\n\r\n")
            await writer.drain()
            if not transport.is_reading():
                break
            await asyncio.sleep(0)  # let the edge read what we sent
        assert not transport.is_reading(), "the edge kept reading requests it could not answer"
        assert transport.get_write_buffer_size() <= 2 * len(body) + 64 * 1024
    finally:
        writer.close()


@pytest.mark.parametrize("size", [10_240, 200 * 1024], ids=["joined", "vectored"])
async def test_recognised_hit_body_arrives_intact(quick_idle_edge: Edge, origin: OriginStub, size: int) -> None:
    body = bytes(range(256)) * (size // 256)
    origin.routes["/photo.avif"] = lambda request: web.Response(body=body, headers={"Cache-Control": "max-age=60"})
    reader, writer = await asyncio.open_connection("127.0.0.1", quick_idle_edge.data_port)
    try:
        answers = []
        for _ in range(4):  # size-aware admission stores an object this large in this tier on its second miss
            writer.write(b"GET /photo.avif HTTP/1.1\r\nHost: shop\r\n\r\n")
            head, received = await read_response(reader)
            answers.append((re.search(rb"X-Cache: (\w+)", head).group(1), received == body))  # type: ignore[union-attr]
    finally:
        writer.close()
    assert answers == [(b"MISS", True), (b"MISS", True), (b"HIT", True), (b"HIT", True)]
