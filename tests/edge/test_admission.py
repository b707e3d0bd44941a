"""The default edge applies size-aware admission over real HTTP, and says so truthfully in its headers."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from edgefleet_edge.server import Edge

from tests.edge.conftest import EdgeUnderTest, OriginStub, settings_for

# The edge fixture's memory tier is 8 MiB: "large" is over 0.05% of it, 4,194 bytes.
LARGE = b"L" * 100_000
SMALL = b"s" * 1_000


def serve(origin: OriginStub, path: str, body: bytes) -> None:
    origin.routes[path] = lambda request: web.Response(body=body, headers={"Cache-Control": "max-age=300"})


async def test_default_edge_stores_a_large_object_on_its_second_request(edge: EdgeUnderTest) -> None:
    serve(edge.origin, "/large.jpg", LARGE)
    first, second, third = [await edge.get("/large.jpg") for _ in range(3)]
    assert first.headers["X-Cache"] == second.headers["X-Cache"] == "MISS"
    assert first.headers["Cache-Status"] == "edge-t; fwd=miss", "the first miss is not stored, and says so"
    assert second.headers["Cache-Status"] == "edge-t; fwd=miss; stored"
    assert third.headers["X-Cache"] == "HIT"
    assert edge.origin.count("/large.jpg") == 2
    assert edge.edge.store.stats.declined["memory"] == 1
    metrics = await edge.session.get(edge.admin + "/metrics", headers={"Authorization": "Bearer admin-secret"})
    text = await metrics.text()
    assert 'edgefleet_edge_admissions_declined_total{tier="memory"} 1.0' in text, "operators can see refusals"


async def test_default_edge_stores_a_small_object_on_its_first_request(edge: EdgeUnderTest) -> None:
    serve(edge.origin, "/small.css", SMALL)
    first, second = await edge.get("/small.css"), await edge.get("/small.css")
    assert first.headers["Cache-Status"] == "edge-t; fwd=miss; stored"
    assert second.headers["X-Cache"] == "HIT"
    assert edge.origin.count("/small.css") == 1


async def test_declined_object_is_still_served_whole_and_by_range(edge: EdgeUnderTest) -> None:
    serve(edge.origin, "/video.mp4", LARGE)
    response = await edge.session.get(edge.url + "/video.mp4", headers={"Range": "bytes=0-9"})
    assert response.status == 206
    assert await response.read() == LARGE[:10]
    assert response.headers["Content-Range"] == f"bytes 0-9/{len(LARGE)}"
    assert response.headers["Cache-Status"] == "edge-t; fwd=miss"


@pytest.fixture(params=["s3fifo", "lru"], ids=["s3fifo", "lru"])
async def baseline_edge(origin: OriginStub, request: pytest.FixtureRequest) -> AsyncIterator[EdgeUnderTest]:
    instance = Edge(dataclasses.replace(settings_for(origin), cache_policy=request.param))
    await instance.start()
    session = aiohttp.ClientSession(auto_decompress=False)
    yield EdgeUnderTest(instance, origin, session)
    await session.close()
    await instance.stop()


async def test_edge_with_a_baseline_policy_stores_a_large_object_on_its_first_request(
    baseline_edge: EdgeUnderTest,
) -> None:
    serve(baseline_edge.origin, "/large.jpg", LARGE)
    first, second = await baseline_edge.get("/large.jpg"), await baseline_edge.get("/large.jpg")
    assert first.headers["Cache-Status"] == "edge-t; fwd=miss; stored"
    assert second.headers["X-Cache"] == "HIT"
    assert baseline_edge.origin.count("/large.jpg") == 1
