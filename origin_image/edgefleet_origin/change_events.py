"""Telling the fleet that objects changed: purge on replace/delete, warm on create (the purge bus).

A changed object is purged by its path and by its path surrogate key, which every variant of it carries
(``caching.path_surrogate_key``), so one purge removes the original and all its widths and formats.

With a bus, every change goes through the durable outbox (``outbox.py``): written first, published in
order, removed once the bus confirmed it. A change the bus did not take stays there and is published by
a background retry as soon as the bus answers; uploads report it as pending meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Protocol

from edgefleet.bus import BusError, PurgeBus, PurgeMessage, WarmMessage
from edgefleet_origin.caching import asset_path, path_surrogate_key
from edgefleet_origin.metrics import OriginMetrics
from edgefleet_origin.outbox import Outbox

RETRY_INTERVAL = 1.0
"""Seconds between attempts to publish what the outbox holds while the bus is down."""

log = logging.getLogger(__name__)

ISSUER = "origin"


class Change(enum.Enum):
    CREATED = "created"  # a key that did not exist
    REPLACED = "replaced"  # new bytes under an existing key
    WRITTEN = "written"  # created or replaced, origin cannot tell (bucket notifications)
    DELETED = "deleted"


def purge_for(key: str) -> PurgeMessage:
    return PurgeMessage(
        purge_id=f"origin-{uuid.uuid4()}",
        paths=(asset_path(key),),
        tags=(path_surrogate_key(key),),
        soft=False,
        issuer=ISSUER,
        issued_at=time.time(),
    )


def warm_for(key: str) -> WarmMessage:
    return WarmMessage(paths=(asset_path(key),), issuer=ISSUER, issued_at=time.time())


def messages_for(change: Change, key: str) -> list[PurgeMessage | WarmMessage]:
    """What to publish for one change, in order. An object written behind the origin's back may have
    replaced an older version that edges still hold, so it is purged before it is warmed."""
    if change is Change.CREATED:
        return [warm_for(key)]
    if change is Change.WRITTEN:
        return [purge_for(key), warm_for(key)]
    return [purge_for(key)]


@dataclass(frozen=True)
class Notified:
    """What became of one change's events."""

    published: bool
    outbox_entry: str | None = None
    """When not yet published: the outbox entry that will be (``GET /api/outbox`` lists pending ones)."""


@dataclass(frozen=True)
class Backlog:
    pending: int
    last_error: str | None

    def describe(self) -> str | None:
        """One line for ``/readyz``, or None when nothing is waiting."""
        if not self.pending:
            return None
        why = f": {self.last_error}" if self.last_error else ""
        return f"{self.pending} object changes wait in the outbox for the purge bus{why}"


class ChangeNotifier(Protocol):
    async def start(self) -> None: ...

    async def notify(self, change: Change, key: str) -> Notified:
        """Publish the change (through the outbox when there is a bus)."""
        ...

    def backlog(self) -> Backlog: ...

    async def pending_entries(self) -> list[str]: ...

    async def close(self) -> None: ...


class NoNotifier:
    """No bus configured: nothing to tell (a single origin without edges, or local experiments)."""

    async def start(self) -> None:
        return None

    async def notify(self, change: Change, key: str) -> Notified:
        return Notified(True)

    def backlog(self) -> Backlog:
        return Backlog(0, None)

    async def pending_entries(self) -> list[str]:
        return []

    async def close(self) -> None:
        return None


class BusNotifier:
    """Publishes changes through the outbox; a background task drains what the bus did not take."""

    def __init__(
        self, bus: PurgeBus, outbox: Outbox, metrics: OriginMetrics, retry_interval: float = RETRY_INTERVAL
    ) -> None:
        self.bus = bus
        self.outbox = outbox
        self.metrics = metrics
        self.retry_interval = retry_interval
        self._lock = asyncio.Lock()
        self._pending = 0
        self._last_error: str | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        left = await asyncio.to_thread(self.outbox.start)
        self._set_pending(left)
        if left:
            log.warning("Found %d unpublished object changes in the outbox; publishing them", left)
        self._task = asyncio.get_running_loop().create_task(self._retry_forever())

    def _set_pending(self, count: int) -> None:
        self._pending = count
        self.metrics.outbox_pending.set(count)

    def backlog(self) -> Backlog:
        return Backlog(self._pending, self._last_error if self._pending else None)

    async def pending_entries(self) -> list[str]:
        return await asyncio.to_thread(self.outbox.names)

    async def notify(self, change: Change, key: str) -> Notified:
        entry = await asyncio.to_thread(self.outbox.add, messages_for(change, key), f"{change.value} {key}")
        self._set_pending(self._pending + 1)
        remaining = await self.drain()
        if entry.name in remaining:
            return Notified(False, entry.name)
        return Notified(True)

    async def drain(self) -> set[str]:
        """Publish pending changes oldest first, stopping at the first the bus refuses; the names left."""
        async with self._lock:
            names = await asyncio.to_thread(self.outbox.names)
            for index, name in enumerate(names):
                entry = await asyncio.to_thread(self.outbox.load, name)
                if entry is None:
                    continue
                try:
                    for message in entry.messages:
                        await self._publish(message, entry.summary)
                except BusError as exc:
                    if self._last_error is None:
                        log.error("Failed to publish events for %s; kept in the outbox: %s", entry.summary, exc)
                    self._last_error = str(exc)
                    left = set(names[index:])
                    self._set_pending(len(left))
                    return left
                await asyncio.to_thread(self.outbox.remove, name)
                self.metrics.outbox_published.inc()
                if self._last_error is not None:
                    log.info("Published events for %s from the outbox", entry.summary)
            if self._last_error is not None and names:
                log.info("Purge bus is back: the outbox is empty")
            self._last_error = None
            self._set_pending(0)
            return set()

    async def _publish(self, message: PurgeMessage | WarmMessage, summary: str) -> None:
        if isinstance(message, PurgeMessage):
            entry_id = await self.bus.publish_purge(message)
            log.info("Published purge %s for %s", entry_id, summary)
        else:
            await self.bus.publish_warm(message)
            log.info("Published warm event for %s", summary)

    async def _retry_forever(self) -> None:
        while True:
            await asyncio.sleep(self.retry_interval)  # the retry cadence while the bus is down
            if self._pending:
                await self.drain()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.bus.client.aclose()
