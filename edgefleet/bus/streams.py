"""The purge bus on Redis Streams: publish, consume in order, acknowledge, ask who is pending.

Keys for cluster ``C`` (every component derives them here and nowhere else):

    edgefleet:{C}:purges              stream of purges; every edge reads all of it (fan-out, XREAD)
    edgefleet:{C}:warm                stream of warm events; balancers share it (consumer group)
    edgefleet:{C}:purge-id:{P}        entry id of the purge published with idempotency key P
    edgefleet:{C}:acks:{E}            hash member -> ack time for purge entry E
    edgefleet:{C}:skipped:{E}         hash member -> why it skipped entry E (it could not be read)
    edgefleet:{C}:dead-letters        stream: one record per unreadable entry (id, stream, reason, fields)
    edgefleet:{C}:dead-letter:{E}     marker that entry E was recorded (each entry is recorded once)
    edgefleet:{C}:epoch               random id written once: a new one means Redis lost the bus's history

Invariants: an edge applies purges in stream order and acknowledges each one *before* it saves its
checkpoint: an ack that Redis did not confirm leaves the checkpoint behind the entry, so the consumer
re-applies it (purges are idempotent) and acknowledges again when the bus answers; an applied purge is
never left reported pending. An entry that cannot be read is recorded as a dead letter, marked skipped
by the member, and stepped over: no entry can stop a consumer. A purge published twice under one
idempotency key is stored once.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from .checkpoints import Checkpoint
from .messages import BusEntry, MalformedMessage, PurgeMessage, WarmMessage, decode, encode
from .metrics import ConsumerMetrics

logger = logging.getLogger(__name__)

Apply = Callable[[BusEntry], Awaitable[None]]
HandleWarm = Callable[[str, WarmMessage], Awaitable[None]]
OnMalformed = Callable[[str, MalformedMessage], None]

RETENTION_ENTRIES = 100_000
"""Purges kept in the stream (approximately); an edge that falls further behind drops its cache."""
BOOKKEEPING_TTL_SECONDS = 7 * 24 * 3600
"""How long idempotency keys and acknowledgements are kept."""
DEAD_LETTER_RETENTION = 10_000
"""Dead-letter records kept (approximately)."""
DEAD_LETTER_FIELDS_CHARS = 2048
"""How much of an unreadable entry's fields a dead-letter record quotes."""

# Publish once per idempotency key, atomically: a retried or restarted publisher gets the first id back.
_PUBLISH_ONCE = """
local existing = redis.call('GET', KEYS[2])
if existing then return existing end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'v', ARGV[2], 'kind', ARGV[3], 'data', ARGV[4])
redis.call('SET', KEYS[2], id, 'EX', ARGV[5])
return id
"""


# Record an unreadable entry once (whoever meets it first), and the member's skip every time.
_DEAD_LETTER = """
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[5])
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'EX', ARGV[5]) then
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[6], '*',
             'entry', ARGV[1], 'stream', ARGV[4], 'member', ARGV[2], 'reason', ARGV[3], 'fields', ARGV[7])
  return 1
end
return 0
"""


class BusHistory(NamedTuple):
    epoch: str
    """The bus's current epoch (``<hex>@<unix time it began>``)."""
    lost: bool
    """The epoch is not the one the caller knew: Redis lost its data, with any purges and acknowledgements in it."""


class BusError(RuntimeError):
    """The bus could not be reached or refused an operation."""


class BusUnavailable(BusError, ConnectionError):
    """Redis did not answer (or failed) while a consumer read, acknowledged or recorded: retry later.

    A ``ConnectionError`` too, so callers that treat an unreachable bus as "not ready, retry" catch it.
    """


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


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
        self.dead_letter_stream = f"edgefleet:{cluster}:dead-letters"
        self._publish_once = client.register_script(_PUBLISH_ONCE)
        self._dead_letter = client.register_script(_DEAD_LETTER)

    def _idempotency_key(self, purge_id: str) -> str:
        return f"edgefleet:{self.cluster}:purge-id:{purge_id}"

    def _acks_key(self, entry_id: str) -> str:
        return f"edgefleet:{self.cluster}:acks:{entry_id}"

    def _skipped_key(self, entry_id: str) -> str:
        return f"edgefleet:{self.cluster}:skipped:{entry_id}"

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
        """Record that ``member`` applied purge ``entry_id``. Idempotent: a resent ack keeps the first time."""
        key = self._acks_key(entry_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, member, repr(time.time()))
            pipe.expire(key, BOOKKEEPING_TTL_SECONDS)
            await pipe.execute()

    async def acknowledgements(self, entry_id: str) -> dict[str, float]:
        """Member -> unix time of its acknowledgement of purge ``entry_id``."""
        raw: dict[Any, Any] = await self.client.hgetall(self._acks_key(entry_id))  # type: ignore[misc]
        return {_text(member): float(_text(at)) for member, at in raw.items()}

    async def history(self, known_epoch: str | None = None) -> BusHistory:
        """The bus's epoch, and whether it differs from ``known_epoch``.

        The epoch is written by whoever asks first and lives as long as the streams do (no expiry), so a Redis
        that comes back empty (no persistence, a rescheduled pod, a flushed database) gets a new one. The
        operator keeps the epoch it saw in the CdnCluster's status and reports a lost history when it changes.
        """
        key = f"edgefleet:{self.cluster}:epoch"
        candidate = f"{uuid.uuid4().hex}@{int(time.time())}"
        try:
            created = await self.client.set(key, candidate, nx=True)
            epoch = candidate if created else _text(await self.client.get(key))
        except RedisError as exc:
            raise BusUnavailable(str(exc) or type(exc).__name__) from exc
        return BusHistory(epoch, known_epoch is not None and epoch != known_epoch)

    async def skipped(self, entry_id: str) -> dict[str, str]:
        """Member -> why it skipped entry ``entry_id`` (an entry it could not read; nothing was applied)."""
        raw: dict[Any, Any] = await self.client.hgetall(self._skipped_key(entry_id))  # type: ignore[misc]
        return {_text(member): _text(reason) for member, reason in raw.items()}

    async def record_dead_letter(
        self, stream: str, entry_id: str, member: str, reason: str, fields: dict[Any, Any]
    ) -> bool:
        """Note that ``member`` skipped unreadable ``entry_id``; True when this call wrote the dead letter."""
        quoted = repr({_text(k): _text(v)[:DEAD_LETTER_FIELDS_CHARS] for k, v in list((fields or {}).items())[:16]})
        written = await self._dead_letter(
            keys=[self.dead_letter_stream, f"edgefleet:{self.cluster}:dead-letter:{entry_id}",
                  self._skipped_key(entry_id)],
            args=[entry_id, member, reason, stream, BOOKKEEPING_TTL_SECONDS, DEAD_LETTER_RETENTION,
                  quoted[:DEAD_LETTER_FIELDS_CHARS]],
        )  # fmt: skip
        return bool(written)

    async def dead_letters(self, count: int = 100) -> list[dict[str, str]]:
        """The newest dead-letter records, newest first (entry, stream, member, reason, fields)."""
        raw = await self.client.xrevrange(self.dead_letter_stream, count=count)
        return [{_text(k): _text(v) for k, v in fields.items()} for _id, fields in raw]

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
        metrics: ConsumerMetrics | None = None,
        block_ms: int = 1000,
        batch: int = 100,
    ) -> PurgeConsumer:
        return PurgeConsumer(
            self, member, checkpoint, on_malformed=on_malformed, metrics=metrics, block_ms=block_ms, batch=batch
        )

    def warm_consumer(
        self,
        group: str,
        consumer: str,
        *,
        metrics: ConsumerMetrics | None = None,
        block_ms: int = 1000,
        batch: int = 50,
    ) -> WarmConsumer:
        return WarmConsumer(self, group, consumer, metrics=metrics, block_ms=block_ms, batch=batch)


def _unreadable(entry_id: str, fields: dict[Any, Any], expected: type[PurgeMessage | WarmMessage]) -> Any:
    """The message in an entry, or the ``MalformedMessage`` that says why it cannot be used.

    ``decode`` raises nothing else by contract; anything else it raises still makes the *entry* poison, never
    the consumer's end, so it is turned into a ``MalformedMessage`` here too.
    """
    try:
        message = decode(fields)
    except MalformedMessage as exc:
        return exc
    except Exception as exc:
        logger.exception("Decoding entry %s raised %s", entry_id, type(exc).__name__)
        return MalformedMessage(f"unreadable entry: {type(exc).__name__}")
    if not isinstance(message, expected):
        other = "warm" if isinstance(message, WarmMessage) else "purge"
        return MalformedMessage(f"a {other} message in the {'purge' if expected is PurgeMessage else 'warm'} stream")
    return message


class PurgeConsumer:
    """Applies one cluster's purges to one member (an edge), in order, exactly once per checkpoint."""

    def __init__(
        self,
        bus: PurgeBus,
        member: str,
        checkpoint: Checkpoint,
        *,
        on_malformed: OnMalformed | None,
        metrics: ConsumerMetrics | None = None,
        block_ms: int,
        batch: int,
    ) -> None:
        self.bus = bus
        self.member = member
        self.checkpoint = checkpoint
        self.on_malformed = on_malformed
        self.metrics = metrics
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
        message = _unreadable(entry_id, fields, PurgeMessage)
        if isinstance(message, MalformedMessage):
            # Recorded and skipped, never retried: nobody can apply it, and its issuer learns why
            # from the dead-letter stream and the skip marks.
            self.malformed += 1
            logger.error("Skipped malformed purge entry %s: %s", entry_id, message)
            await self.bus.record_dead_letter("purges", entry_id, self.member, str(message), fields)
            if self.metrics is not None:
                self.metrics.dead_letters.labels("purges").inc()
            if self.on_malformed is not None:
                self.on_malformed(entry_id, message)
        else:
            await apply(BusEntry(entry_id, message))
            self.applied += 1
            # Acknowledge before the checkpoint: if Redis fails here, the checkpoint still points before
            # this entry, so the next catch-up applies it again and resends the ack (see the module doc).
            await self.bus.acknowledge(entry_id, self.member)
        await self.checkpoint.save(entry_id)
        self.last_id = entry_id

    async def catch_up(self, apply: Apply) -> int:
        """Apply every purge after the checkpoint up to the current end; the number applied.

        Raises ``BusUnavailable`` when Redis fails; calling it again resumes from the checkpoint.
        """
        try:
            position = await self._start_position(apply)
            before = self.applied
            while True:
                raw = await self.bus.client.xrange(self.bus.purge_stream, min=f"({position}", count=self.batch)
                if not raw:
                    break
                for entry_id, fields in raw:
                    await self._handle(apply, _text(entry_id), fields)
                    position = _text(entry_id)
        except RedisError as exc:
            raise BusUnavailable(str(exc) or type(exc).__name__) from exc
        self.last_id = position
        return self.applied - before

    async def run(self, apply: Apply) -> None:
        """Apply new purges as they arrive, until cancelled or until Redis fails.

        Raises ``BusUnavailable`` when Redis fails, so the caller can report not-ready (the member cannot
        apply purges then) and call ``catch_up`` again: that resumes from the checkpoint and resends any
        acknowledgement Redis did not confirm.
        """
        try:
            if self.last_id is None:
                await self.catch_up(apply)
            assert self.last_id is not None
            while True:
                response = await self.bus.client.xread(
                    {self.bus.purge_stream: self.last_id}, count=self.batch, block=self.block_ms
                )
                for _stream, entries in response or ():
                    for entry_id, fields in entries:
                        await self._handle(apply, _text(entry_id), fields)
        except RedisError as exc:
            raise BusUnavailable(str(exc) or type(exc).__name__) from exc


class WarmConsumer:
    """Shares the warm stream with the other members of ``group``: each event goes to one of them."""

    def __init__(
        self,
        bus: PurgeBus,
        group: str,
        consumer: str,
        *,
        metrics: ConsumerMetrics | None = None,
        block_ms: int,
        batch: int,
    ) -> None:
        self.bus = bus
        self.group = group
        self.consumer = consumer
        self.metrics = metrics
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
            message = _unreadable(entry_id, fields, WarmMessage)
            if isinstance(message, MalformedMessage):
                logger.error("Skipped malformed warm entry %s: %s", entry_id, message)
                await self.bus.record_dead_letter("warm", entry_id, self.consumer, str(message), fields)
                if self.metrics is not None:
                    self.metrics.dead_letters.labels("warm").inc()
            else:
                await handle(entry_id, message)
                self.handled += 1
            await self.bus.client.xack(self.bus.warm_stream, self.group, entry_id)

    async def run(self, handle: HandleWarm) -> None:
        """Handle warm events forever (cancel the task to stop). Entries this consumer was given but did not
        acknowledge (a crash, or Redis failing mid-delivery) are delivered again first, after every reconnect."""
        backoff = 0.1
        while True:
            try:
                await self.ensure_group()
                while True:
                    pending = await self.bus.client.xreadgroup(
                        self.group, self.consumer, {self.bus.warm_stream: "0"}, count=self.batch
                    )
                    entries = [e for _stream, batch in pending or () for e in batch]
                    if not entries:
                        break
                    await self._deliver(handle, entries)
                while True:
                    response = await self.bus.client.xreadgroup(
                        self.group, self.consumer, {self.bus.warm_stream: ">"}, count=self.batch, block=self.block_ms
                    )
                    backoff = 0.1
                    for _stream, entries in response or ():
                        await self._deliver(handle, entries)
            except RedisError as exc:
                logger.warning("Warm stream unreachable (%s); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)  # reconnect backoff, not a readiness wait
                backoff = min(backoff * 2, 5.0)
