"""The purge bus on Redis Streams: publish, consume in order, acknowledge, ask who is pending.

Keys for cluster ``C`` (every component derives them here and nowhere else):

    edgefleet:{C}:purges              stream of purges; every edge reads all of it (fan-out, XREAD)
    edgefleet:{C}:warm                stream of warm events; balancers share it (consumer group)
    edgefleet:{C}:purge-id:{P}        entry id of the purge published with idempotency key P
    edgefleet:{C}:acks:{E}            hash member -> ack time for purge entry E

Invariants: an edge applies purges in stream order and saves its checkpoint *before* acknowledging,
so an acknowledged purge is never re-needed after a crash, and an unacknowledged one is re-applied
(purges are idempotent). A purge published twice under one idempotency key is stored once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from .checkpoints import Checkpoint
from .messages import BusEntry, MalformedMessage, PurgeMessage, WarmMessage, decode, encode

logger = logging.getLogger(__name__)

Apply = Callable[[BusEntry], Awaitable[None]]
HandleWarm = Callable[[str, WarmMessage], Awaitable[None]]
OnMalformed = Callable[[str, MalformedMessage], None]

RETENTION_ENTRIES = 100_000
"""Purges kept in the stream (approximately); an edge that falls further behind drops its cache."""
BOOKKEEPING_TTL_SECONDS = 7 * 24 * 3600
"""How long idempotency keys and acknowledgements are kept."""

# Publish once per idempotency key, atomically: a retried or restarted publisher gets the first id back.
_PUBLISH_ONCE = """
local existing = redis.call('GET', KEYS[2])
if existing then return existing end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'v', ARGV[2], 'kind', ARGV[3], 'data', ARGV[4])
redis.call('SET', KEYS[2], id, 'EX', ARGV[5])
return id
"""


class BusError(RuntimeError):
    """The bus could not be reached or refused an operation."""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def entry_id_key(entry_id: str) -> tuple[int, int]:
    """Sortable form of a stream id ``<ms>-<seq>``."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class PurgeBus:
    """One cluster's bus. ``client`` is a ``redis.asyncio.Redis``; the bus never closes it."""

    def __init__(self, client: aioredis.Redis, cluster: str) -> None:
        if not cluster or any(c in cluster for c in "{}: \n"):
            raise ValueError(f"invalid bus cluster name {cluster!r}")
        self.client = client
        self.cluster = cluster
        self.purge_stream = f"edgefleet:{cluster}:purges"
        self.warm_stream = f"edgefleet:{cluster}:warm"
        self._publish_once = client.register_script(_PUBLISH_ONCE)

    def _idempotency_key(self, purge_id: str) -> str:
        return f"edgefleet:{self.cluster}:purge-id:{purge_id}"

    def _acks_key(self, entry_id: str) -> str:
        return f"edgefleet:{self.cluster}:acks:{entry_id}"

    # ---- publishing ----------------------------------------------------------------------------

    async def publish_purge(self, message: PurgeMessage) -> str:
        """Append ``message`` unless its ``purge_id`` was published before; the entry id either way."""
        if message.is_empty:
            raise ValueError("a purge must name at least one target (paths, prefixes, tags or all)")
        fields = encode(message)
        try:
            entry_id = await self._publish_once(
                keys=[self.purge_stream, self._idempotency_key(message.purge_id)],
                args=[RETENTION_ENTRIES, fields["v"], fields["kind"], fields["data"], BOOKKEEPING_TTL_SECONDS],
            )
        except RedisError as exc:
            raise BusError(f"could not publish purge {message.purge_id}: {exc}") from exc
        return _text(entry_id)

    async def publish_warm(self, message: WarmMessage) -> str:
        try:
            fields: dict[Any, Any] = dict(encode(message))
            entry_id = await self.client.xadd(self.warm_stream, fields, maxlen=RETENTION_ENTRIES, approximate=True)
        except RedisError as exc:
            raise BusError(f"could not publish warm event: {exc}") from exc
        return _text(entry_id)

    # ---- reading -------------------------------------------------------------------------------

    async def latest_id(self) -> str:
        """Id of the newest purge entry, ``0-0`` when there is none."""
        newest = await self.client.xrevrange(self.purge_stream, count=1)
        return _text(newest[0][0]) if newest else "0-0"

    async def oldest_id(self) -> str | None:
        oldest = await self.client.xrange(self.purge_stream, count=1)
        return _text(oldest[0][0]) if oldest else None

    async def read_purges(self, after: str = "0-0", count: int = 1000) -> list[BusEntry]:
        """Valid purges after ``after`` (exclusive), oldest first; malformed entries are skipped."""
        raw = await self.client.xrange(self.purge_stream, min=f"({after}", count=count)
        entries = []
        for entry_id, fields in raw:
            try:
                message = decode(fields)
            except MalformedMessage:
                continue
            if isinstance(message, PurgeMessage):
                entries.append(BusEntry(_text(entry_id), message))
        return entries

    async def read_warms(self, after: str = "0-0", count: int = 1000) -> list[tuple[str, WarmMessage]]:
        raw = await self.client.xrange(self.warm_stream, min=f"({after}", count=count)
        out = []
        for entry_id, fields in raw:
            try:
                message = decode(fields)
            except MalformedMessage:
                continue
            if isinstance(message, WarmMessage):
                out.append((_text(entry_id), message))
        return out

    # ---- acknowledgements ----------------------------------------------------------------------

    async def acknowledge(self, entry_id: str, member: str) -> None:
        key = self._acks_key(entry_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(key, member, repr(time.time()))
            pipe.expire(key, BOOKKEEPING_TTL_SECONDS)
            await pipe.execute()

    async def acknowledgements(self, entry_id: str) -> dict[str, float]:
        """Member -> unix time of its acknowledgement of purge ``entry_id``."""
        raw: dict[Any, Any] = await self.client.hgetall(self._acks_key(entry_id))  # type: ignore[misc]
        return {_text(member): float(_text(at)) for member, at in raw.items()}

    async def pending(self, entry_id: str, members: list[str] | tuple[str, ...]) -> list[str]:
        """Those of ``members`` that have not acknowledged purge ``entry_id``, in the given order."""
        acked = await self.acknowledgements(entry_id)
        return [member for member in members if member not in acked]

    # ---- consumers -----------------------------------------------------------------------------

    def purge_consumer(
        self,
        member: str,
        checkpoint: Checkpoint,
        *,
        on_malformed: OnMalformed | None = None,
        block_ms: int = 1000,
        batch: int = 100,
    ) -> PurgeConsumer:
        return PurgeConsumer(self, member, checkpoint, on_malformed=on_malformed, block_ms=block_ms, batch=batch)

    def warm_consumer(self, group: str, consumer: str, *, block_ms: int = 1000, batch: int = 50) -> WarmConsumer:
        return WarmConsumer(self, group, consumer, block_ms=block_ms, batch=batch)


class PurgeConsumer:
    """Applies one cluster's purges to one member (an edge), in order, exactly once per checkpoint."""

    def __init__(
        self,
        bus: PurgeBus,
        member: str,
        checkpoint: Checkpoint,
        *,
        on_malformed: OnMalformed | None,
        block_ms: int,
        batch: int,
    ) -> None:
        self.bus = bus
        self.member = member
        self.checkpoint = checkpoint
        self.on_malformed = on_malformed
        self.block_ms = block_ms
        self.batch = batch
        self.last_id: str | None = None
        self.applied = 0
        self.malformed = 0

    async def _start_position(self, apply: Apply) -> str:
        saved = await self.checkpoint.load()
        if saved is None:
            # A member that never applied a purge has nothing cached from before now: start at the end.
            latest = await self.bus.latest_id()
            await self.checkpoint.save(latest)
            return latest
        oldest = await self.bus.oldest_id()
        if oldest is not None and saved != "0-0" and entry_id_key(oldest) > entry_id_key(saved):
            # Purges between the checkpoint and the oldest retained entry may have been trimmed away.
            # Dropping everything is the only answer that cannot serve content someone purged.
            logger.warning("Purge stream was trimmed past checkpoint %s of %s; purging all", saved, self.member)
            synthetic = PurgeMessage(purge_id=f"gap-{self.member}-{saved}", all=True, issuer="bus")
            await apply(BusEntry(saved, synthetic))
        return saved

    async def _handle(self, apply: Apply, entry_id: str, fields: dict[Any, Any]) -> None:
        applied = False
        try:
            message = decode(fields)
            if not isinstance(message, PurgeMessage):
                raise MalformedMessage("a warm message in the purge stream")
        except MalformedMessage as exc:
            self.malformed += 1
            logger.error("Skipped malformed purge entry %s: %s", entry_id, exc)
            if self.on_malformed is not None:
                self.on_malformed(entry_id, exc)
        else:
            await apply(BusEntry(entry_id, message))
            self.applied += 1
            applied = True
        # Checkpoint before acknowledging: an ack promises the purge survives a restart. A malformed
        # entry is stepped over but not acknowledged: nobody applied it, and its issuer should learn that.
        await self.checkpoint.save(entry_id)
        if applied:
            await self.bus.acknowledge(entry_id, self.member)
        self.last_id = entry_id

    async def catch_up(self, apply: Apply) -> int:
        """Apply every purge after the checkpoint up to the current end; the number applied."""
        position = await self._start_position(apply)
        before = self.applied
        while True:
            raw = await self.bus.client.xrange(self.bus.purge_stream, min=f"({position}", count=self.batch)
            if not raw:
                break
            for entry_id, fields in raw:
                await self._handle(apply, _text(entry_id), fields)
                position = _text(entry_id)
        self.last_id = position
        return self.applied - before

    async def run(self, apply: Apply) -> None:
        """Apply new purges as they arrive, forever (cancel the task to stop)."""
        if self.last_id is None:
            await self.catch_up(apply)
        assert self.last_id is not None
        backoff = 0.1
        while True:
            try:
                response = await self.bus.client.xread(
                    {self.bus.purge_stream: self.last_id}, count=self.batch, block=self.block_ms
                )
            except (RedisError, OSError) as exc:
                logger.warning("Purge bus unreachable (%s); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)  # reconnect backoff, not a readiness wait
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            for _stream, entries in response or ():
                for entry_id, fields in entries:
                    await self._handle(apply, _text(entry_id), fields)


class WarmConsumer:
    """Shares the warm stream with the other members of ``group``: each event goes to one of them."""

    def __init__(self, bus: PurgeBus, group: str, consumer: str, *, block_ms: int, batch: int) -> None:
        self.bus = bus
        self.group = group
        self.consumer = consumer
        self.block_ms = block_ms
        self.batch = batch
        self.handled = 0

    async def ensure_group(self) -> None:
        try:
            await self.bus.client.xgroup_create(self.bus.warm_stream, self.group, id="$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _deliver(self, handle: HandleWarm, entries: list[Any]) -> None:
        for raw_id, fields in entries:
            entry_id = _text(raw_id)
            try:
                message = decode(fields)
                if not isinstance(message, WarmMessage):
                    raise MalformedMessage("a purge message in the warm stream")
            except MalformedMessage as exc:
                logger.error("Skipped malformed warm entry %s: %s", entry_id, exc)
            else:
                await handle(entry_id, message)
                self.handled += 1
            await self.bus.client.xack(self.bus.warm_stream, self.group, entry_id)

    async def run(self, handle: HandleWarm) -> None:
        """Handle warm events forever (cancel the task to stop); entries left pending by a crash first."""
        await self.ensure_group()
        pending = await self.bus.client.xreadgroup(
            self.group, self.consumer, {self.bus.warm_stream: "0"}, count=self.batch
        )
        for _stream, entries in pending or ():
            await self._deliver(handle, entries)
        backoff = 0.1
        while True:
            try:
                response = await self.bus.client.xreadgroup(
                    self.group, self.consumer, {self.bus.warm_stream: ">"}, count=self.batch, block=self.block_ms
                )
            except (RedisError, OSError) as exc:
                logger.warning("Warm stream unreachable (%s); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)  # reconnect backoff, not a readiness wait
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            for _stream, entries in response or ():
                await self._deliver(handle, entries)
