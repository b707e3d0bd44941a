"""Purges from the bus (real Redis) and the storage tiers: kinds, order, acks, restarts, races, limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from edgefleet_edge.server import Edge
from edgefleet_edge.store import Entry, Store

from edgefleet.bus import PurgeBus, PurgeMessage
from tests.edge.conftest import EdgeUnderTest, OriginStub, settings_for

DEADLINE = 15.0


async def until(probe: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while True:
        value = probe()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def tagged(path: str, tags: str) -> Callable[[web.Request], web.Response]:
    return lambda request: web.Response(
        body=f"{path} {time.monotonic_ns()}".encode(),
        headers={"Cache-Control": "max-age=300", "Surrogate-Key": tags, "ETag": '"e"'},
    )


async def start_edge(
    origin: OriginStub, redis_url: str, cache_dir: Path | None = None, name: str = "edge-a"
) -> EdgeUnderTest:
    edge = Edge(settings_for(origin, cache_dir=cache_dir, disk=64 * 2**20 if cache_dir else 0, redis=redis_url,
                             name=name))  # fmt: skip
    await edge.start()
    return EdgeUnderTest(edge, origin, aiohttp.ClientSession())


async def stop_edge(edge: EdgeUnderTest) -> None:
    await edge.session.close()
    await edge.edge.stop()


async def cached(edge: EdgeUnderTest, path: str) -> bool:
    return (await edge.get(path)).headers["X-Cache"] == "HIT"


@pytest.fixture
async def bus(redis_url: str) -> PurgeBus:
    return PurgeBus(aioredis.Redis.from_url(redis_url), cluster="shop")


PURGES = [
    ("path-all-variants", PurgeMessage(purge_id="p", paths=("/assets/a.jpg",)),
     {"/assets/a.jpg?w=1", "/assets/a.jpg?w=2"}),
    ("prefix", PurgeMessage(purge_id="p", prefixes=("/assets/sale/",)), {"/assets/sale/s.jpg"}),
    ("tag", PurgeMessage(purge_id="p", tags=("sku-1",)), {"/assets/a.jpg?w=1", "/assets/a.jpg?w=2", "/assets/b.jpg"}),
    ("all", PurgeMessage(purge_id="p", all=True),
     {"/assets/a.jpg?w=1", "/assets/a.jpg?w=2", "/assets/b.jpg", "/assets/sale/s.jpg"}),
]  # fmt: skip


@pytest.mark.parametrize(("message", "purged"), [(m, p) for _, m, p in PURGES], ids=[i for i, _, _ in PURGES])
async def test_bus_purge_evicts_exactly_what_it_names_and_is_acknowledged(
    origin: OriginStub, redis_url: str, bus: PurgeBus, message: PurgeMessage, purged: set[str]
) -> None:
    origin.routes["/assets/a.jpg"] = tagged("a", "path:/assets/a.jpg sku-1")
    origin.routes["/assets/b.jpg"] = tagged("b", "path:/assets/b.jpg sku-1")
    origin.routes["/assets/sale/s.jpg"] = tagged("s", "path:/assets/sale/s.jpg sale")
    edge = await start_edge(origin, redis_url)
    try:
        await until(lambda: edge.edge.admin_state.ready, "the edge to catch up")
        paths = ["/assets/a.jpg?w=1", "/assets/a.jpg?w=2", "/assets/b.jpg", "/assets/sale/s.jpg"]
        for path in paths:
            await edge.get(path)
        entry_id = await bus.publish_purge(message)

        async def acked() -> bool:
            return await bus.pending(entry_id, ["edge-a"]) == []

        await until(acked, "edge-a to acknowledge")
        for path in paths:
            assert (await cached(edge, path)) is (path not in purged), path
    finally:
        await stop_edge(edge)
        await bus.client.aclose()


async def test_restarted_edge_catches_up_before_it_is_ready_and_keeps_its_disk_cache(
    origin: OriginStub, redis_url: str, bus: PurgeBus, tmp_path: Path
) -> None:
    origin.routes["/assets/keep.jpg"] = tagged("keep", "keep")
    origin.routes["/assets/gone.jpg"] = tagged("gone", "gone")
    first = await start_edge(origin, redis_url, cache_dir=tmp_path / "cache")
    await until(lambda: first.edge.admin_state.ready, "catch-up")
    await first.get("/assets/keep.jpg")
    await first.get("/assets/gone.jpg")
    # Written through to the disk tier when stored: a restart empties memory only.
    await stop_edge(first)

    entry_id = await bus.publish_purge(PurgeMessage(purge_id="while-down", tags=("gone",)))
    second = await start_edge(origin, redis_url, cache_dir=tmp_path / "cache")
    try:
        await until(lambda: second.edge.admin_state.ready, "catch-up after the restart")
        assert await bus.pending(entry_id, ["edge-a"]) == []
        assert await cached(second, "/assets/keep.jpg"), "the disk tier survived the restart"
        assert not await cached(second, "/assets/gone.jpg"), "the purge issued while down was applied"
        assert origin.count("/assets/keep.jpg") == 1
    finally:
        await stop_edge(second)
        await bus.client.aclose()


async def test_purges_apply_in_publication_order(origin: OriginStub, redis_url: str, bus: PurgeBus) -> None:
    edge = await start_edge(origin, redis_url)
    applied: list[str] = []
    original = edge.edge.store.purge

    def recording(ids: set[str], *, soft: bool) -> int:
        applied.append(f"soft={soft}")
        return original(ids, soft=soft)

    edge.edge.store.purge = recording  # type: ignore[method-assign]
    try:
        await until(lambda: edge.edge.admin_state.ready, "catch-up")
        for i in range(10):
            await bus.publish_purge(PurgeMessage(purge_id=f"o{i}", paths=(f"/p{i}",), soft=i % 2 == 1))
        await until(lambda: len(applied) == 10, "ten purges")
        assert applied == [f"soft={i % 2 == 1}" for i in range(10)]
    finally:
        await stop_edge(edge)
        await bus.client.aclose()


async def test_fetch_in_flight_when_a_purge_arrives_is_not_stored_as_fresh(
    origin: OriginStub, redis_url: str, bus: PurgeBus
) -> None:
    origin.routes["/assets/race.jpg"] = tagged("race", "race")
    edge = await start_edge(origin, redis_url)
    try:
        await until(lambda: edge.edge.admin_state.ready, "catch-up")
        origin.delay = asyncio.Event()
        in_flight = asyncio.create_task(edge.get("/assets/race.jpg"))
        await until(lambda: origin.count("/assets/race.jpg") == 1, "the fetch to start")
        entry_id = await bus.publish_purge(PurgeMessage(purge_id="race", tags=("race",)))

        async def acked() -> bool:
            return await bus.pending(entry_id, ["edge-a"]) == []

        await until(acked, "the purge to be applied while the fetch is in flight")
        origin.delay.set()
        assert (await in_flight).status == 200
        origin.delay = None
        after = await edge.get("/assets/race.jpg")
        assert after.headers["X-Cache"] != "HIT", "content fetched across a purge must be revalidated"
        assert origin.count("/assets/race.jpg") == 2
    finally:
        await stop_edge(edge)
        await bus.client.aclose()


def _entry(key: str, size: int) -> Entry:
    return Entry(key=key, variant="", path=key, status=200, headers=[], size=size, request_time=0, response_time=0,
                 initial_age=0, lifetime=60, stale_while_revalidate=0, stale_if_error=0, must_revalidate=False,
                 vary=(), surrogate_keys=())  # fmt: skip


def test_memory_stays_under_its_limit_while_serving_a_working_set_ten_times_larger(tmp_path: Path) -> None:
    store = Store(memory_bytes=1_000_000, disk_bytes=2_000_000, cache_dir=tmp_path)
    peak = 0
    for i in range(2_000):  # 10 MB of 5 KB objects through a 1 MB memory tier
        # Each object twice: 5 KB is large for a 1 MB tier, so admission stores it on its second request.
        for _ in range(2):
            store.put(_entry(f"/o/{i}", 5_000), body=b"x" * 5_000)
            peak = max(peak, store.memory.used)
            used, _, capacity = store.tier_stats()["disk"]
            assert used <= capacity
    assert peak <= 1_000_000
    assert store.evictions()["memory"] > 0 and store.evictions()["disk"] > 0


def test_torn_disk_write_is_never_served_after_a_restart(tmp_path: Path) -> None:
    store = Store(memory_bytes=0, disk_bytes=1_000_000, cache_dir=tmp_path)
    store.put(_entry("/whole", 100), body=b"w" * 100)
    store.put(_entry("/torn", 100), body=b"t" * 100)
    torn = next(store.variants("/torn"))
    assert store.disk is not None
    store.disk.body_path(torn).write_bytes(b"t" * 40)  # the crash cut the body short
    store.close()
    (tmp_path / "objects" / ".incoming-leftover").write_bytes(b"partial")
    reopened = Store(memory_bytes=0, disk_bytes=1_000_000, cache_dir=tmp_path)
    assert reopened.load_disk() == 1
    assert next(reopened.variants("/whole"), None) is not None
    assert next(reopened.variants("/torn"), None) is None
    assert not (tmp_path / "objects" / ".incoming-leftover").exists()
