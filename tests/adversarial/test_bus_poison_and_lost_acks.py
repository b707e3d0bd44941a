"""Hostile and unlucky purge buses, against real Redis: poison entries, a Redis that dies mid-purge.

Each entry below used to stop a consumer for good (it raised something other than ``MalformedMessage``
and was retried forever); a Redis that died between checkpoint and acknowledgement left an applied purge
reported pending forever; an edge whose bus was unreachable still said it was ready.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from edgefleet_edge.admin import AdminState
from edgefleet_edge.purging import follow_purge_bus
from prometheus_client import CollectorRegistry

from edgefleet.bus import BusEntry, ConsumerMetrics, FileCheckpoint, PurgeBus, PurgeMessage
from edgefleet.embedded_redis import EmbeddedRedis, EmbeddedRedisError
from edgefleet.metric_names import BUS_DEAD_LETTERS

DEADLINE_SECONDS = 20.0

POISON = {
    "integer-of-5000-digits": {"v": "1", "kind": "purge", "data": '{"purge_id": "p", "all": true, "issued_at": '
                               + "7" * 5000 + "}"},
    "nesting-100000-deep": {"v": "1", "kind": "purge", "data": "[" * 100_000 + "]" * 100_000},
    "nesting-inside-a-field": {"v": "1", "kind": "purge", "data": '{"purge_id": "p", "paths": '
                               + "[" * 20_000 + "]" * 20_000 + "}"},
    "garbage-bytes": {"v": "1", "kind": "purge", "data": b"\xff\xfe\x00garbage"},
    "garbage-field-names": {b"\xff\xfe": b"\x00", "v": "1"},
    "not-an-object": {"v": "1", "kind": "purge", "data": "42"},
    "unknown-version": {"v": "99", "kind": "purge", "data": "{}"},
    "no-fields-we-know": {"junk": "x"},
    "warm-in-the-purge-stream": {"v": "1", "kind": "warm", "data": '{"paths": ["/a"]}'},
}  # fmt: skip


async def until(condition: object, what: str) -> None:
    """Poll ``condition()`` (sync or async) until true, failing after a deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while True:
        value = condition()  # type: ignore[operator]
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class Recorder:
    """An edge's purge applier stand-in; ``on_apply`` runs inside the apply, before any ack."""

    def __init__(self) -> None:
        self.entries: list[BusEntry] = []
        self.on_apply: object = None

    async def __call__(self, entry: BusEntry) -> None:
        self.entries.append(entry)
        hook, self.on_apply = self.on_apply, None
        if hook is not None:
            await hook()  # type: ignore[operator]

    @property
    def purge_ids(self) -> list[str]:
        return [e.message.purge_id for e in self.entries]


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis of this test's own, with an append-only file, so it can be killed and restarted."""
    server = EmbeddedRedis(data_dir=tmp_path / "redis")
    try:
        server.start()
    except EmbeddedRedisError as exc:
        pytest.fail(f"a Redis server is needed: {exc}")
    yield server
    server.stop()


@pytest.fixture
async def bus(own_redis: EmbeddedRedis) -> AsyncIterator[PurgeBus]:
    client = aioredis.Redis.from_url(own_redis.url, socket_connect_timeout=1, socket_timeout=5)
    yield PurgeBus(client, cluster="shop")
    await client.aclose()


@pytest.mark.parametrize("fields", list(POISON.values()), ids=list(POISON))
async def test_poison_entry_is_dead_lettered_and_the_purges_after_it_still_apply(
    bus: PurgeBus, tmp_path: Path, fields: dict[str, object]
) -> None:
    registry = CollectorRegistry()
    consumer = bus.purge_consumer("edge-a", FileCheckpoint(tmp_path / "ckpt"), metrics=ConsumerMetrics(registry))
    seen = Recorder()
    await consumer.catch_up(seen)
    poison_id = (await bus.client.xadd(bus.purge_stream, fields)).decode()  # type: ignore[arg-type]
    after = await bus.publish_purge(PurgeMessage(purge_id="after", paths=("/assets/a.jpg",)))

    await consumer.catch_up(seen)

    assert seen.purge_ids == ["after"]
    assert await bus.pending(after, ["edge-a"]) == []
    letters = await bus.dead_letters()
    assert [(d["entry"], d["stream"], d["member"]) for d in letters] == [(poison_id, "purges", "edge-a")]
    assert letters[0]["reason"]
    assert set(await bus.skipped(poison_id)) == {"edge-a"}
    assert registry.get_sample_value(BUS_DEAD_LETTERS, {"stream": "purges"}) == 1.0
    # The checkpoint moved past the poison: a restarted consumer does not meet it again.
    assert (tmp_path / "ckpt").read_text() == after


async def test_poison_entry_is_recorded_once_however_many_edges_meet_it(bus: PurgeBus, tmp_path: Path) -> None:
    consumers = [bus.purge_consumer(f"edge-{i}", FileCheckpoint(tmp_path / f"ckpt-{i}")) for i in range(3)]
    for consumer in consumers:
        await consumer.catch_up(Recorder())
    poison_id = (await bus.client.xadd(bus.purge_stream, POISON["integer-of-5000-digits"])).decode()  # type: ignore[arg-type]
    for consumer in consumers:
        await consumer.catch_up(Recorder())
    assert [d["entry"] for d in await bus.dead_letters()] == [poison_id]
    assert set(await bus.skipped(poison_id)) == {"edge-0", "edge-1", "edge-2"}


async def test_edge_stays_ready_and_keeps_purging_after_a_poison_entry(bus: PurgeBus, tmp_path: Path) -> None:
    state = AdminState()
    seen = Recorder()
    consumer = bus.purge_consumer("edge-a", FileCheckpoint(tmp_path / "ckpt"), block_ms=100)
    follower = asyncio.create_task(follow_purge_bus(consumer, seen, state))
    try:
        await until(lambda: state.ready, "the edge to catch up")
        for fields in POISON.values():
            await bus.client.xadd(bus.purge_stream, fields)  # type: ignore[arg-type]
        entry = await bus.publish_purge(PurgeMessage(purge_id="after-poison", tags=("sku-1",)))
        await until(lambda: seen.purge_ids == ["after-poison"], "the purge after the poison")
        await until(lambda: _acked(bus, entry, "edge-a"), "its acknowledgement")
        assert state.ready, state.reason
        assert len(await bus.dead_letters()) == len(POISON)
    finally:
        follower.cancel()
        with pytest.raises(asyncio.CancelledError):
            await follower


async def _acked(bus: PurgeBus, entry_id: str, member: str) -> bool:
    return member in await bus.acknowledgements(entry_id)


async def test_ack_lost_to_a_redis_crash_is_resent_when_redis_returns(
    own_redis: EmbeddedRedis, bus: PurgeBus, tmp_path: Path
) -> None:
    """Redis dies after the purge was applied and before Redis confirmed its ack; it comes back with
    its append-only file. The purge must end up acknowledged, not pending forever."""
    state = AdminState()
    seen = Recorder()
    checkpoint = FileCheckpoint(tmp_path / "ckpt")
    consumer = bus.purge_consumer("edge-a", checkpoint, block_ms=100)
    follower = asyncio.create_task(follow_purge_bus(consumer, seen, state))
    try:
        await until(lambda: state.ready, "the edge to catch up")

        async def kill_redis() -> None:
            await asyncio.to_thread(own_redis.stop)

        seen.on_apply = kill_redis
        entry = await bus.publish_purge(PurgeMessage(purge_id="lost-ack", paths=("/assets/a.jpg",)))
        await until(lambda: own_redis.pid is None, "Redis to be killed during the purge")
        await until(lambda: not state.ready, "the edge to report that it cannot apply purges")

        await asyncio.to_thread(own_redis.start)
        await until(lambda: _acked(bus, entry, "edge-a"), "the acknowledgement to be resent")
        await until(lambda: state.ready, "the edge to be ready again")
        assert await bus.pending(entry, ["edge-a"]) == []
        assert set(seen.purge_ids) == {"lost-ack"}  # applied again on resume: purges are idempotent
        assert checkpoint.path.read_text() == entry
    finally:
        follower.cancel()
        with pytest.raises(asyncio.CancelledError):
            await follower


async def test_edge_is_not_ready_while_its_bus_is_unreachable_and_says_why(
    own_redis: EmbeddedRedis, bus: PurgeBus, tmp_path: Path
) -> None:
    state = AdminState()
    seen = Recorder()
    consumer = bus.purge_consumer("edge-a", FileCheckpoint(tmp_path / "ckpt"), block_ms=100)
    follower = asyncio.create_task(follow_purge_bus(consumer, seen, state))
    try:
        await until(lambda: state.ready, "the edge to catch up")
        await asyncio.to_thread(own_redis.stop)
        await until(lambda: not state.ready, "the edge to notice the bus is gone")
        assert state.reason.startswith("purge bus unreachable"), state.reason

        await asyncio.to_thread(own_redis.start)
        entry = await bus.publish_purge(PurgeMessage(purge_id="back", prefixes=("/assets/",)))
        await until(lambda: state.ready and seen.purge_ids == ["back"], "ready again, applying purges")
        await until(lambda: _acked(bus, entry, "edge-a"), "the acknowledgement")
    finally:
        follower.cancel()
        with pytest.raises(asyncio.CancelledError):
            await follower


async def test_warm_consumer_dead_letters_a_poison_entry_and_handles_the_next(bus: PurgeBus) -> None:
    from edgefleet.bus import WarmMessage

    handled: list[tuple[str, ...]] = []

    async def handle(entry_id: str, message: WarmMessage) -> None:
        handled.append(message.paths)

    consumer = bus.warm_consumer("balancers", "balancer-0", block_ms=100)
    await consumer.ensure_group()
    poison = (await bus.client.xadd(bus.warm_stream, POISON["nesting-100000-deep"] | {"kind": "warm"})).decode()  # type: ignore[arg-type]
    await bus.publish_warm(WarmMessage(paths=("/assets/after.jpg",)))
    task = asyncio.create_task(consumer.run(handle))
    try:
        await until(lambda: handled == [("/assets/after.jpg",)], "the warm event after the poison")
        letters = await bus.dead_letters()
        assert [(d["entry"], d["stream"]) for d in letters] == [(poison, "warm")]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
