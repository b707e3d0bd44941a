"""The edge's origin client against an origin that speaks raw bytes: what aiohttp's client hid from the edge.

The origin here is a plain asyncio server that answers each request with scripted bytes, so the tests can send
what real origins sometimes send (interim responses, bodies longer than their Content-Length, bodies that end
with the connection, idle connections closed under the client) and see what the edge and its pool make of it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from edgefleet_edge.origin_client import OriginError, OriginPool, OriginTimeout
from edgefleet_edge.server import Edge

from tests.edge.conftest import OriginStub, settings_for

Script = Callable[[bytes], bytes]
"""The request's head in, the bytes to answer with out."""


@dataclass
class RawOrigin:
    script: Script
    port: int = 0
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    close_after_each: bool = False
    server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests.append(head)
                answer = self.script(head)
                writer.write(answer)
                await writer.drain()
                if self.close_after_each or not answer:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def raw_origin() -> AsyncIterator[RawOrigin]:
    origin = RawOrigin(lambda head: b"")
    await origin.start()
    yield origin
    await origin.stop()


@pytest.fixture
async def raw_edge(raw_origin: RawOrigin) -> AsyncIterator[Edge]:
    stub = OriginStub(port=raw_origin.port)  # only its port is used to configure the edge
    edge = Edge(dataclasses.replace(settings_for(stub)))
    await edge.start()
    yield edge
    await edge.stop()


async def exchange(edge: Edge, request: bytes) -> bytes:
    """One request on a fresh connection; everything the edge sends until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.data_port)
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    return answer


def get(path: str, version: str = "1.1") -> bytes:
    return f"GET {path} HTTP/{version}\r\nHost: shop\r\nConnection: close\r\n\r\n".encode()


async def test_a_body_longer_than_its_content_length_is_cut_at_the_length(raw_origin: RawOrigin,
                                                                          raw_edge: Edge) -> None:  # fmt: skip
    raw_origin.script = lambda head: (
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nCache-Control: max-age=60\r\n\r\nhello world"
    )
    first = await exchange(raw_edge, get("/long"))
    assert first.startswith(b"HTTP/1.1 200 ") and first.endswith(b"\r\n\r\nhello"), "RFC 9112 §6.3: the 5 bytes"
    assert b"X-Cache: MISS" in first
    second = await exchange(raw_edge, get("/long"))
    assert b"X-Cache: HIT" in second and second.endswith(b"\r\n\r\nhello")


async def test_interim_responses_reach_http_1_1_clients_before_the_final_one(raw_origin: RawOrigin,
                                                                             raw_edge: Edge) -> None:  # fmt: skip
    raw_origin.script = lambda head: (
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nCache-Control: no-store\r\n\r\nok"
    )
    answer = await exchange(raw_edge, get("/hints"))
    assert answer.startswith(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK")
    assert answer.endswith(b"\r\n\r\nok")
    old = await exchange(raw_edge, get("/hints", "1.0"))
    assert old.startswith(b"HTTP/1.1 200 OK"), "RFC 9110 §15.2: never a 1xx to an HTTP/1.0 client"


async def test_a_body_that_ends_with_the_connection_is_whole(raw_origin: RawOrigin, raw_edge: Edge) -> None:
    raw_origin.close_after_each = True
    raw_origin.script = lambda head: b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n\r\n" + b"x" * 100_000
    answer = await exchange(raw_edge, get("/eof"))
    assert answer.startswith(b"HTTP/1.1 200 ") and b"Content-Length: 100000\r\n" in answer
    assert answer.endswith(b"x" * 100_000)


async def test_a_body_cut_short_is_never_stored(raw_origin: RawOrigin, raw_edge: Edge) -> None:
    raw_origin.close_after_each = True
    raw_origin.script = lambda head: b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nCache-Control: max-age=60\r\n\r\nabc"
    await exchange(raw_edge, get("/short"))
    await exchange(raw_edge, get("/short"))
    assert len(raw_origin.requests) == 2, "the truncated response was not kept"


# ---- the pool on its own ----------------------------------------------------------------------------------


async def test_sequential_requests_reuse_one_connection(raw_origin: RawOrigin) -> None:
    raw_origin.script = lambda head: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    pool = OriginPool(f"http://127.0.0.1:{raw_origin.port}")
    for _ in range(3):
        response = await pool.request("GET", "/c", [])
        assert await response.read() == b"abc"
        response.release()
    assert raw_origin.connections == 1 and len(raw_origin.requests) == 3
    await pool.close()


async def test_an_idle_connection_closed_by_the_origin_is_replaced(raw_origin: RawOrigin) -> None:
    raw_origin.close_after_each = True  # answers as if keep-alive, then closes: the pool finds out on reuse
    raw_origin.script = lambda head: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    pool = OriginPool(f"http://127.0.0.1:{raw_origin.port}")
    for _ in range(3):
        response = await pool.request("GET", "/r", [])
        assert await response.read() == b"ok"
        response.release()
    assert len(raw_origin.requests) == 3
    await pool.close()


async def test_an_origin_that_stalls_times_out(raw_origin: RawOrigin) -> None:
    raw_origin.script = lambda head: b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
    pool = OriginPool(f"http://127.0.0.1:{raw_origin.port}", read_timeout=0.2)
    response = await pool.request("GET", "/stall", [])
    with pytest.raises(OriginTimeout):
        await response.read()
    await pool.close()


async def test_a_malformed_response_is_an_origin_error(raw_origin: RawOrigin) -> None:
    raw_origin.script = lambda head: b"NOT HTTP AT ALL\r\n\r\n"
    pool = OriginPool(f"http://127.0.0.1:{raw_origin.port}")
    with pytest.raises(OriginError):
        await pool.request("GET", "/bad", [])
    await pool.close()


def test_an_origin_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="http"):
        OriginPool("ftp://origin")
