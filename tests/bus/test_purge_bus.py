"""The purge bus against a real Redis server: publish, consume in order, acknowledge, resume."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from edgefleet.bus import (
    BusEntry,
    FileCheckpoint,
    MalformedMessage,
    PurgeBus,
    PurgeMessage,
    RedisCheckpoint,
    WarmMessage,
)

DEADLINE_SECONDS = 10.0


@pytest.fixture
async def bus(redis_url: str) -> AsyncIterator[PurgeBus]:
    client = aioredis.Redis.from_url(redis_url)
    yield PurgeBus(client, cluster="shop")
    await client.aclose()


async def wait_until(condition: object, what: str) -> None:
    """Poll ``condition()`` until true, failing after a deadline (no fixed sleeps)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while not condition():  # type: ignore[operator]
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class Recorder:
    def __init__(self) -> None:
        self.entries: list[BusEntry] = []

    async def __call__(self, entry: BusEntry) -> None:
        self.entries.append(entry)

    @property
    def purge_ids(self) -> list[str]:
        return [e.message.purge_id for e in self.entries]


async def test_purge_is_consumed_acknowledged_and_no_longer_pending(bus: PurgeBus, tmp_path: Path) -> None:
    consumer = bus.purge_consumer("edge-a", FileCheckpoint(tmp_path / "a"))
    seen = Recorder()
    await consumer.catch_up(seen)
    entry_id = await bus.publish_purge(PurgeMessage(purge_id="p1", paths=("/assets/a.jpg",)))
    assert await bus.pending(entry_id, ["edge-a", "edge-b"]) == ["edge-a", "edge-b"]

    task = asyncio.create_task(consumer.run(seen))
    try:
        await wait_until(lambda: seen.purge_ids == ["p1"], "edge-a to apply p1")
        while await bus.pending(entry_id, ["edge-a", "edge-b"]) != ["edge-b"]:
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert set(await bus.acknowledgements(entry_id)) == {"edge-a"}
    assert seen.entries[0].message.paths == ("/assets/a.jpg",)


async def test_purges_are_applied_in_publication_order(bus: PurgeBus) -> None:
    consumer = bus.purge_consumer("edge-a", RedisCheckpoint(bus.client, "ckpt:a"))
    seen = Recorder()
    await consumer.catch_up(seen)
    for i in range(20):
        await bus.publish_purge(PurgeMessage(purge_id=f"p{i}", tags=(f"sku-{i}",)))
    await consumer.catch_up(seen)
    assert seen.purge_ids == [f"p{i}" for i in range(20)]


async def test_publishing_the_same_purge_id_twice_stores_it_once(bus: PurgeBus) -> None:
    first = await bus.publish_purge(PurgeMessage(purge_id="uid-1", all=True))
    again = await bus.publish_purge(PurgeMessage(purge_id="uid-1", all=True))
    assert first == again
    assert [e.entry_id for e in await bus.read_purges()] == [first]


async def test_restarted_consumer_resumes_after_its_persisted_checkpoint(bus: PurgeBus, tmp_path: Path) -> None:
    checkpoint = tmp_path / "edge-a.checkpoint"
    first_life = bus.purge_consumer("edge-a", FileCheckpoint(checkpoint))
    seen = Recorder()
    await first_life.catch_up(seen)
    await bus.publish_purge(PurgeMessage(purge_id="before", paths=("/a",)))
    await first_life.catch_up(seen)
    assert seen.purge_ids == ["before"]

    # The edge is down while two more purges are published.
    await bus.publish_purge(PurgeMessage(purge_id="while-down-1", paths=("/b",)))
    await bus.publish_purge(PurgeMessage(purge_id="while-down-2", prefixes=("/c/",)))

    second_life = bus.purge_consumer("edge-a", FileCheckpoint(checkpoint))
    after_restart = Recorder()
    applied = await second_life.catch_up(after_restart)
    assert applied == 2
    assert after_restart.purge_ids == ["while-down-1", "while-down-2"]


async def test_new_member_starts_at_the_end_of_the_stream(bus: PurgeBus) -> None:
    await bus.publish_purge(PurgeMessage(purge_id="old", all=True))
    seen = Recorder()
    assert await bus.purge_consumer("fresh", RedisCheckpoint(bus.client, "ckpt:fresh")).catch_up(seen) == 0
    assert seen.entries == []


async def test_malformed_entry_is_reported_and_skipped_without_stopping_the_consumer(bus: PurgeBus) -> None:
    reported: list[tuple[str, MalformedMessage]] = []
    consumer = bus.purge_consumer(
        "edge-a", RedisCheckpoint(bus.client, "ckpt:a"), on_malformed=lambda i, e: reported.append((i, e))
    )
    seen = Recorder()
    await consumer.catch_up(seen)
    bad_id = (await bus.client.xadd(bus.purge_stream, {"v": "1", "kind": "purge", "data": "garbage"})).decode()
    good_id = await bus.publish_purge(PurgeMessage(purge_id="good", paths=("/ok",)))
    task = asyncio.create_task(consumer.run(seen))
    try:
        await wait_until(lambda: consumer.last_id == good_id, "the consumer to step past both entries")
    finally:
        task.cancel()
    assert seen.purge_ids == ["good"]
    assert [i for i, _ in reported] == [bad_id]
    assert "not JSON" in str(reported[0][1])
    assert await bus.pending(bad_id, ["edge-a"]) == ["edge-a"], "a malformed purge is never acknowledged"
    assert await bus.pending(good_id, ["edge-a"]) == []


async def test_checkpoint_older_than_the_retained_stream_purges_everything(bus: PurgeBus) -> None:
    checkpoint = RedisCheckpoint(bus.client, "ckpt:a")
    await checkpoint.save("1-0")  # long ago: everything since was trimmed away
    await bus.publish_purge(PurgeMessage(purge_id="recent", paths=("/x",)))
    seen = Recorder()
    await bus.purge_consumer("edge-a", checkpoint).catch_up(seen)
    assert seen.entries[0].message.all, "a gap in the stream must drop the whole cache"
    assert seen.purge_ids[1:] == ["recent"]


async def test_warm_event_is_handled_by_exactly_one_member_of_the_group(bus: PurgeBus) -> None:
    handled: dict[str, list[tuple[str, ...]]] = {"b1": [], "b2": []}

    def handler(name: str):  # type: ignore[no-untyped-def]
        async def handle(entry_id: str, message: WarmMessage) -> None:
            handled[name].append(message.paths)

        return handle

    consumers = [bus.warm_consumer("balancers", name, block_ms=100) for name in handled]
    for consumer in consumers:
        await consumer.ensure_group()
    tasks = [asyncio.create_task(c.run(handler(n))) for c, n in zip(consumers, handled, strict=True)]
    try:
        for i in range(10):
            await bus.publish_warm(WarmMessage(paths=(f"/assets/{i}.jpg",)))
        await wait_until(lambda: sum(len(v) for v in handled.values()) >= 10, "all warm events")
    finally:
        for task in tasks:
            task.cancel()
    everything = handled["b1"] + handled["b2"]
    assert sorted(everything) == sorted((f"/assets/{i}.jpg",) for i in range(10))
