"""The balancer in front of a real ``edgefleet edge`` (and origin) processes, for what stubs cannot show."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from edgefleet.bus import PurgeBus, WarmMessage
from edgefleet.embedded_redis import free_port
from tests.balancer.harness import TOKEN, eventually, haproxy_available, running

LARGE = bytes(range(256)) * 4096
"""1 MiB: under the edge's default policy a new object this much larger than what it stores waits for its second
request, unless the request is the fleet's own (marked) warm request."""


@dataclass
class RealEdge:
    url: str
    admin_url: str


def wait_ready(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    import urllib.request

    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, f"{what} exited"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 300:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not ready")
        time.sleep(0.1)


@pytest.fixture
def real_edge(tmp_path: Path) -> Iterator[RealEdge]:
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "a.bin").write_bytes(b"x" * 1000)
    (tmp_path / "assets" / "large.bin").write_bytes(LARGE)
    origin, edge, admin = free_port(), free_port(), free_port()
    cli = [sys.executable, "-m", "edgefleet.cli"]
    processes = [
        subprocess.Popen([*cli, "origin", "--listen", f"127.0.0.1:{origin}", "--storage",
                          f"file://{tmp_path / 'assets'}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ]  # fmt: skip
    try:
        wait_ready(f"http://127.0.0.1:{origin}/healthz", processes[0], "origin")
        processes.append(subprocess.Popen(
            [*cli, "edge", "--listen", f"127.0.0.1:{edge}", "--admin-listen", f"127.0.0.1:{admin}",
             "--origin", f"http://127.0.0.1:{origin}", "--name", "edge-0", "--memory", "16Mi",
             "--admin-token", TOKEN],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))  # fmt: skip
        wait_ready(f"http://127.0.0.1:{admin}/healthz", processes[1], "edge")
        yield RealEdge(f"http://127.0.0.1:{edge}", f"http://127.0.0.1:{admin}")
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(10)


async def expect_continue(port: int) -> tuple[bytes, bytes]:
    """An upload that waits for "100 Continue" before its body, as curl and browsers' fetch do."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /assets/up.bin HTTP/1.1\r\nHost: shop\r\nContent-Length: 1000\r\n"
                 b"Expect: 100-continue\r\nConnection: close\r\n\r\n")  # fmt: skip
    await writer.drain()
    try:
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    except TimeoutError:
        interim = b""
    writer.write(b"y" * 1000)
    await writer.drain()
    final = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    return interim, final


async def test_expect_100_continue_is_answered_by_the_balancer_even_when_the_edge_ignores_it(
    real_edge: RealEdge,
) -> None:
    haproxy_available()
    async with running(0) as s:
        assert await s.put_members([{"name": "edge-0", "url": real_edge.url, "admin_url": real_edge.admin_url}]) == 200
        await eventually(s.all_up, "the real edge to pass its health check on its admin port")
        interim, final = await expect_continue(s.balancer.data_port)
        assert interim.startswith(b"HTTP/1.1 100"), "the client got its interim answer and sent the body at once"
        assert final.startswith(b"HTTP/1.1 "), final[:100]
        assert not final.startswith(b"HTTP/1.1 100"), "exactly one 100 Continue"


async def test_a_real_edge_serves_hits_through_the_balancer(real_edge: RealEdge) -> None:
    haproxy_available()
    async with running(0) as s:
        assert await s.put_members([{"name": "edge-0", "url": real_edge.url, "admin_url": real_edge.admin_url}]) == 200
        await eventually(s.all_up, "the real edge to pass its health check")
        caches = []
        for _ in range(2):
            async with s.session.get(s.url + "/assets/a.bin") as response:
                assert response.status == 200 and await response.read() == b"x" * 1000
                assert response.headers["X-Edge"] == "edge-0"
                caches.append(response.headers["X-Cache"][:4])
        assert caches == ["MISS", "HIT"]


async def test_an_uploads_warm_request_stores_a_large_object_so_the_first_shopper_gets_a_hit(
    real_edge: RealEdge, redis_url: str
) -> None:
    """The whole warm chain with a real edge: bus event -> agent -> HAProxy's warm path (with the marker) -> the
    edge admits it on this first request. Without the marker the edge declines it and the shopper gets a MISS."""
    import aiohttp
    import redis.asyncio as aioredis

    haproxy_available()
    async with running(0, redis=redis_url) as s:
        assert await s.put_members([{"name": "edge-0", "url": real_edge.url, "admin_url": real_edge.admin_url}]) == 200
        await eventually(s.all_up, "the real edge to pass its health check")
        client = aioredis.Redis.from_url(redis_url)
        try:
            await PurgeBus(client, "shop").publish_warm(WarmMessage(paths=("/assets/large.bin",), issuer="test"))
        finally:
            await client.aclose()

        async def warmed() -> bool:
            url, headers = real_edge.admin_url + "/metrics", {"Authorization": f"Bearer {TOKEN}"}
            async with aiohttp.ClientSession() as admin, admin.get(url, headers=headers) as r:
                text = await r.text()
            return any(line.startswith("edgefleet_edge_requests_total{") and 'cache_status="miss"' in line
                       for line in text.splitlines())  # fmt: skip

        await eventually(warmed, "the warm request to reach the edge")
        async with s.session.get(s.url + "/assets/large.bin") as response:
            assert response.status == 200 and await response.read() == LARGE
            assert response.headers["X-Cache"].startswith("HIT"), response.headers.get("Cache-Status")
