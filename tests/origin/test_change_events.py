"""Object changes reach the purge bus on a real Redis: replace and delete purge the path's surrogate
key, a new object is warmed, and MinIO bucket notifications do the same. Both storage backends."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from edgefleet_origin.server import RunningOrigin
from edgefleet_origin.settings import FileLocation
from origin_testkit import auth, jpeg_bytes, upload

from edgefleet.bus import PurgeBus

CLUSTER = "shop"


@pytest.fixture
async def bus(redis_url: str) -> AsyncIterator[PurgeBus]:
    client = aioredis.Redis.from_url(redis_url)
    yield PurgeBus(client, cluster=CLUSTER)
    await client.aclose()


@pytest.fixture
async def origin_on_bus(origin_factory, redis_url: str) -> AsyncIterator[RunningOrigin]:  # type: ignore[no-untyped-def]
    async with origin_factory(redis_url=redis_url, cluster=CLUSTER) as running:
        yield running


async def purged(bus: PurgeBus) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    return [(e.message.paths, e.message.tags) for e in await bus.read_purges()]


async def warmed(bus: PurgeBus) -> list[tuple[str, ...]]:
    return [m.paths for _, m in await bus.read_warms()]


PATH = "/assets/p/shoe.jpg"
PURGE = ((PATH,), ("path:/assets/p/shoe.jpg",))


async def test_new_object_is_warmed_not_purged(
    origin_on_bus: RunningOrigin, http: aiohttp.ClientSession, bus: PurgeBus
) -> None:
    result = await upload(http, origin_on_bus, "p/shoe.jpg", jpeg_bytes(100, 100))
    assert result["event_published"] is True
    assert await warmed(bus) == [(PATH,)]
    assert await purged(bus) == []


async def test_replaced_object_purges_its_path_surrogate_key(
    origin_on_bus: RunningOrigin, http: aiohttp.ClientSession, bus: PurgeBus
) -> None:
    await upload(http, origin_on_bus, "p/shoe.jpg", jpeg_bytes(100, 100))
    await upload(http, origin_on_bus, "p/shoe.jpg", jpeg_bytes(200, 100))
    assert await purged(bus) == [PURGE]
    entry = (await bus.read_purges())[0].message
    assert entry.issuer == "origin" and entry.soft is False


async def test_deleted_object_is_purged(
    origin_on_bus: RunningOrigin, http: aiohttp.ClientSession, bus: PurgeBus
) -> None:
    await upload(http, origin_on_bus, "p/shoe.jpg", jpeg_bytes(100, 100))
    async with http.delete(f"{origin_on_bus.url}/api/files/p/shoe.jpg", headers=auth()) as response:
        assert response.status == 200
    assert await purged(bus) == [PURGE]


async def test_every_variant_carries_the_purged_surrogate_key(
    origin_on_bus: RunningOrigin, http: aiohttp.ClientSession, bus: PurgeBus
) -> None:
    await upload(http, origin_on_bus, "p/shoe.jpg", jpeg_bytes(800, 600), headers={"X-Surrogate-Key": "sku-1"})
    keys = set()
    for query, accept in (("", ""), ("?w=320", "image/avif"), ("?w=640&format=webp", ""), ("?w=320", "*/*")):
        async with http.get(f"{origin_on_bus.url}{PATH}{query}", headers={"Accept": accept}) as response:
            assert response.status == 200
            keys.add(response.headers["Surrogate-Key"])
    assert keys == {"path:/assets/p/shoe.jpg sku-1"}


def minio_event(bucket: str, key: str, name: str, etag: str = "abc") -> dict[str, Any]:
    """The body MinIO's webhook target posts (trimmed to what matters, keys URL-encoded)."""
    return {
        "EventName": name,
        "Key": f"{bucket}/{key}",
        "Records": [
            {
                "eventVersion": "2.0",
                "eventSource": "minio:s3",
                "eventName": name,
                "s3": {
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": key.replace("/", "%2F"), "size": 10, "eTag": etag},
                },
            }
        ],
    }


def bucket_of(origin: RunningOrigin) -> str:
    storage = origin.context.settings.storage
    return "any-bucket" if isinstance(storage, FileLocation) else storage.bucket


@pytest.mark.parametrize(
    ("event_name", "purges", "warms"),
    [
        ("s3:ObjectCreated:Put", [PURGE], [(PATH,)]),
        ("s3:ObjectCreated:CompleteMultipartUpload", [PURGE], [(PATH,)]),
        ("s3:ObjectRemoved:Delete", [PURGE], []),
        ("s3:ObjectAccessed:Get", [], []),
    ],
    ids=["created", "multipart-created", "removed", "accessed-ignored"],
)
async def test_minio_notification_publishes_like_an_upload(
    origin_on_bus: RunningOrigin,
    http: aiohttp.ClientSession,
    bus: PurgeBus,
    event_name: str,
    purges: list[Any],
    warms: list[Any],
) -> None:
    body = json.dumps(minio_event(bucket_of(origin_on_bus), "p/shoe.jpg", event_name))
    async with http.post(f"{origin_on_bus.url}/api/events/minio", data=body, headers=auth()) as response:
        assert response.status == 200
    assert await purged(bus) == purges
    assert await warmed(bus) == warms


async def test_minio_notification_for_another_bucket_is_ignored_by_s3_storage(
    origin_on_bus: RunningOrigin, http: aiohttp.ClientSession, bus: PurgeBus
) -> None:
    # Filesystem storage has no bucket to compare with: it takes any (a MinIO over the same files).
    expected = 1 if isinstance(origin_on_bus.context.settings.storage, FileLocation) else 0
    body = json.dumps(minio_event("someone-elses-bucket", "p/shoe.jpg", "s3:ObjectCreated:Put"))
    async with http.post(f"{origin_on_bus.url}/api/events/minio", data=body, headers=auth()) as response:
        assert (await response.json())["handled"] == expected
    assert len(await purged(bus)) == expected


@pytest.mark.parametrize(
    "body",
    ["not json", "[]", '{"Records": "x"}', '{"Records": [{"eventName": "s3:ObjectCreated:Put"}]}'],
    ids=["not-json", "not-object", "records-not-list", "record-without-s3"],
)
async def test_malformed_minio_notification_is_400(
    origin_on_bus: RunningOrigin, http: aiohttp.ClientSession, bus: PurgeBus, body: str
) -> None:
    async with http.post(f"{origin_on_bus.url}/api/events/minio", data=body, headers=auth()) as response:
        assert response.status == 400
        assert (await response.json())["error"]
    assert await purged(bus) == []


async def test_unreachable_bus_does_not_lose_the_upload(origin_factory, http: aiohttp.ClientSession) -> None:  # type: ignore[no-untyped-def]
    from edgefleet.embedded_redis import free_port

    async with origin_factory(redis_url=f"redis://127.0.0.1:{free_port()}/0", cluster=CLUSTER) as origin:
        result = await upload(http, origin, "p/shoe.jpg", jpeg_bytes(100, 100))
        assert result["event_published"] is False
        async with http.get(f"{origin.url}{PATH}") as response:
            assert response.status == 200


async def test_minio_echo_of_the_origins_own_write_is_not_published_twice(
    origin_on_bus: RunningOrigin, http: aiohttp.ClientSession, bus: PurgeBus
) -> None:
    result = await upload(http, origin_on_bus, "p/shoe.jpg", jpeg_bytes(100, 100))
    own_etag = result["etag"].strip('"')
    webhook = f"{origin_on_bus.url}/api/events/minio"
    echo = json.dumps(minio_event(bucket_of(origin_on_bus), "p/shoe.jpg", "s3:ObjectCreated:Put", own_etag))
    async with http.post(webhook, data=echo, headers=auth()) as response:
        assert (await response.json())["handled"] == 0
    assert (await purged(bus), await warmed(bus)) == ([], [(PATH,)])
    # A different upload of the same key (straight to the bucket) is news, and is published.
    other = json.dumps(minio_event(bucket_of(origin_on_bus), "p/shoe.jpg", "s3:ObjectCreated:Put", "other"))
    async with http.post(webhook, data=other, headers=auth()) as response:
        assert (await response.json())["handled"] == 1
    assert (await purged(bus), await warmed(bus)) == ([PURGE], [(PATH,), (PATH,)])
