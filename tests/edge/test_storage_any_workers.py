"""Storage behaviour that must not depend on the worker count: each test runs ``edgefleet edge --workers 1`` and
``--workers 2`` (one on-disk format, one store, the same policy). Real processes, real files, HTTP on loopback."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.edge.conftest import OriginStub
from tests.edge.test_purges_and_storage import until
from tests.edge.test_workers import StartEdge, start_edge  # noqa: F401 (the fixture)

WORKERS = pytest.mark.parametrize("workers", [1, 2], ids=["workers-1", "workers-2"])
NOT_THE_TIER = {"metrics", "purge.checkpoint"}
"""What the edge keeps in its cache directory besides the disk tier (the workers' metric files, the bus position)."""


def tier_bytes(cache_dir: Path) -> int:
    """Bytes of every file the disk tier has in the cache directory, as the filesystem reports them now."""
    total = 0
    stack = [cache_dir]
    while stack:
        with os.scandir(stack.pop()) as listing:
            for item in listing:
                if item.name in NOT_THE_TIER:
                    continue
                try:
                    if item.is_dir(follow_symlinks=False):
                        stack.append(Path(item.path))
                    else:
                        total += item.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    continue  # evicted while being counted
    return total


SIZE = 1 * 2**20
STREAMS = 16
"""Streams held open at once: 16 MiB in flight against a 4 MiB disk tier."""


@WORKERS
async def test_disk_limit_holds_with_many_streams_in_flight(
    origin: OriginStub,
    start_edge: StartEdge,  # noqa: F811 (the fixture imported above)
    workers: int,
) -> None:
    release = asyncio.Event()
    halfway: set[str] = set()
    bodies = {f"/{'chunked' if n % 4 == 0 else 'sized'}/{n}.bin": bytes([n]) * SIZE for n in range(STREAMS)}

    async def slow(request: web.Request) -> web.StreamResponse:
        body = bodies[request.path]
        response = web.StreamResponse(headers={"Cache-Control": "max-age=600"})
        if request.path.startswith("/chunked/"):
            response.enable_chunked_encoding()  # no Content-Length: the edge learns the size as it goes
        else:
            response.content_length = SIZE
        await response.prepare(request)
        await response.write(body[: SIZE // 2])
        halfway.add(request.path)
        await release.wait()
        await response.write(body[SIZE // 2 :])
        await response.write_eof()
        return response

    for path in bodies:
        origin.routes[path] = slow
    edge = await start_edge(disk="4Mi", memory="1Mi", policy="s3fifo", workers=workers)
    peak = 0

    async def fetch(session: aiohttp.ClientSession, path: str) -> bytes:
        nonlocal peak
        async with session.get(edge.url + path) as response:
            first = await response.content.readexactly(SIZE // 2)
            peak = max(peak, tier_bytes(edge.cache_dir))
            return first + await response.read()

    connector = aiohttp.TCPConnector(force_close=True, limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        fetches = [asyncio.create_task(fetch(session, path)) for path in bodies]

        def all_halfway() -> bool:
            nonlocal peak
            peak = max(peak, tier_bytes(edge.cache_dir))
            return len(halfway) == STREAMS

        await until(all_halfway, "every stream to be half-way through")
        peak = max(peak, tier_bytes(edge.cache_dir))
        release.set()
        received = await asyncio.gather(*fetches)
    assert received == list(bodies.values()), "every client got its whole body, stored or not"
    peak = max(peak, tier_bytes(edge.cache_dir))
    assert 0 < peak <= 4 * 2**20, f"the disk tier held {peak} bytes"


@WORKERS
async def test_default_policy_stores_a_large_object_on_its_second_request(
    origin: OriginStub,
    start_edge: StartEdge,  # noqa: F811 (the fixture imported above)
    workers: int,
) -> None:
    body = b"L" * (512 * 1024)  # large for a 64 MiB disk tier (over 1/1024 of it), small enough to read whole
    origin.routes["/big.jpg"] = lambda request: web.Response(body=body, headers={"Cache-Control": "max-age=600"})
    origin.routes["/small.jpg"] = lambda request: web.Response(body=b"s" * 500,
                                                                headers={"Cache-Control": "max-age=600"})  # fmt: skip
    edge = await start_edge(disk="64Mi", memory="8Mi", policy="s3fifo-gdsf", workers=workers)
    outcomes = []
    for _ in range(3):
        response, received = await edge.get("/big.jpg")  # a fresh connection each: any worker
        assert received == body
        outcomes.append(response.headers["X-Cache"])
    assert outcomes == ["MISS", "MISS", "HIT"], "declined once, stored on the second request, then a hit"
    assert origin.count("/big.jpg") == 2
    first, _ = await edge.get("/small.jpg")
    second, _ = await edge.get("/small.jpg")
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT"), "small: stored at once"
