"""Object changes made while the purge bus is down are kept in a durable outbox and published when it
returns (real Redis, started late or restarted); error bodies never show server file paths."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from edgefleet_origin.server import RunningOrigin
from origin_testkit import auth, jpeg_bytes, png_bytes, upload

from edgefleet.bus import PurgeBus
from edgefleet.embedded_redis import EmbeddedRedis, EmbeddedRedisError, free_port
from edgefleet.metric_names import ORIGIN_OUTBOX_PENDING

CLUSTER = "shop"
DEADLINE_SECONDS = 20.0


@pytest.fixture
def late_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis whose address is known but which is not running until the test starts it."""
    server = EmbeddedRedis(data_dir=tmp_path / "redis", port=free_port())
    yield server
    server.stop()


def start(server: EmbeddedRedis) -> None:
    try:
        server.start()
    except EmbeddedRedisError as exc:
        pytest.fail(f"a Redis server is needed: {exc}")


async def until(condition: Any, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def readyz(http: aiohttp.ClientSession, origin: RunningOrigin) -> tuple[int, str]:
    async with http.get(f"{origin.url}/readyz") as response:
        return response.status, await response.text()


async def pending(http: aiohttp.ClientSession, origin: RunningOrigin) -> list[str]:
    async with http.get(f"{origin.url}/api/outbox", headers=auth()) as response:
        assert response.status == 200
        document: dict[str, Any] = await response.json()
        return list(document["pending"])


async def purged_paths(url: str) -> list[tuple[str, ...]]:
    client = aioredis.Redis.from_url(url)
    try:
        return [entry.message.paths for entry in await PurgeBus(client, CLUSTER).read_purges()]
    finally:
        await client.aclose()


async def test_change_made_while_the_bus_is_down_is_published_when_it_returns(
    origin_factory: Any, http: aiohttp.ClientSession, late_redis: EmbeddedRedis
) -> None:
    async with origin_factory(redis_url=late_redis.url, cluster=CLUSTER) as origin:
        await upload(http, origin, "p/shoe.jpg", jpeg_bytes(50, 50))
        replaced = await upload(http, origin, "p/shoe.jpg", jpeg_bytes(60, 60))
        assert replaced["event_published"] is False
        assert replaced["outbox_entry"] in await pending(http, origin)
        status, text = await readyz(http, origin)
        assert status == 200 and "outbox" in text, text
        assert origin.context.metrics.registry.get_sample_value(ORIGIN_OUTBOX_PENDING) == 2.0

        await asyncio.to_thread(start, late_redis)
        await until(lambda: _empty(http, origin), "the outbox to drain")
        assert await purged_paths(late_redis.url) == [("/assets/p/shoe.jpg",)]
        assert await readyz(http, origin) == (200, "ready\n")
        assert origin.context.metrics.registry.get_sample_value(ORIGIN_OUTBOX_PENDING) == 0.0

        after = await upload(http, origin, "p/shoe.jpg", jpeg_bytes(70, 70))
        assert after["event_published"] is True and "outbox_entry" not in after


async def _empty(http: aiohttp.ClientSession, origin: RunningOrigin) -> bool:
    return not await pending(http, origin)


async def test_outbox_survives_an_origin_restart(
    origin_factory: Any, http: aiohttp.ClientSession, late_redis: EmbeddedRedis
) -> None:
    async with origin_factory(redis_url=late_redis.url, cluster=CLUSTER) as origin:
        await upload(http, origin, "p/a.jpg", jpeg_bytes(50, 50))
        async with http.delete(f"{origin.url}/api/files/p/a.jpg", headers=auth()) as response:
            deleted = await response.json()
        assert deleted["event_published"] is False and deleted["outbox_entry"]
    await asyncio.to_thread(start, late_redis)
    async with origin_factory(redis_url=late_redis.url, cluster=CLUSTER) as origin:
        await until(lambda: _empty(http, origin), "the outbox left by the first run to drain")
        assert await purged_paths(late_redis.url) == [("/assets/p/a.jpg",)]


async def test_outbox_never_shows_up_as_objects(
    origin_factory: Any, http: aiohttp.ClientSession, late_redis: EmbeddedRedis
) -> None:
    async with origin_factory(redis_url=late_redis.url, cluster=CLUSTER) as origin:
        await upload(http, origin, "p/a.jpg", jpeg_bytes(50, 50))
        assert await pending(http, origin)
        async with http.get(f"{origin.url}/api/files", headers=auth()) as response:
            listed = [o["key"] for o in (await response.json())["objects"]]
        assert listed == ["p/a.jpg"]
        async with http.get(f"{origin.url}/assets/.outbox/x") as response:
            assert response.status in {400, 404}


BROKEN_IMAGES = {
    "not-an-image": b"plain text, not an image at all",
    "truncated-jpeg": jpeg_bytes(400, 300)[:300],
    "truncated-png": png_bytes(400, 300)[:100],
    "jpeg-header-only": b"\xff\xd8\xff\xe0 not really a jpeg",
}


@pytest.mark.parametrize("body", list(BROKEN_IMAGES.values()), ids=list(BROKEN_IMAGES))
async def test_unprocessable_image_message_names_no_server_path(
    origin: RunningOrigin, http: aiohttp.ClientSession, body: bytes, tmp_path: Path
) -> None:
    await upload(http, origin, "p/broken.jpg", body, content_type="image/jpeg")
    async with http.get(f"{origin.url}/assets/p/broken.jpg?w=320", headers={"Accept": "image/webp"}) as response:
        text = await response.text()
    assert response.status == 422, text
    assert "p/broken.jpg" in text
    assert str(tmp_path) not in text and "/tmp" not in text and ".source" not in text, text
    assert "/" not in text.replace("p/broken.jpg", ""), text
