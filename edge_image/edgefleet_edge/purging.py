"""Applying purges (from the bus or the admin API) to the store."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import aiohttp

from edgefleet.bus import BusEntry, PurgeConsumer, PurgeMessage

from .metrics import EdgeMetrics, PurgeMetrics
from .store import Store

logger = logging.getLogger(__name__)


def apply_purge(store: Store, message: PurgeMessage, metrics: PurgeMetrics | None = None) -> int:
    """Evict (or, when soft, mark stale) everything the purge names; the number of entries affected.

    Paths match every variant of the path (any query, any Vary value); prefixes match paths; tags
    match the origin's Surrogate-Key values.
    """
    ids = store.matching(paths=message.paths, prefixes=message.prefixes, tags=message.tags, everything=message.all)
    affected = store.purge(ids, soft=message.soft)
    if metrics is not None:
        for kind, present in (("path", message.paths), ("prefix", message.prefixes), ("tag", message.tags)):
            if present:
                metrics.purges.labels(kind).inc()
        if message.all:
            metrics.purges.labels("all").inc()
        metrics.purge_lag.set(max(0.0, time.time() - message.issued_at))
    return affected


class BusPurgeApplier:
    """The callback a PurgeConsumer calls for each purge, in order."""

    def __init__(self, store: Store, metrics: EdgeMetrics) -> None:
        self.store = store
        self.metrics = metrics

    async def __call__(self, entry: BusEntry) -> None:
        affected = apply_purge(self.store, entry.message, self.metrics)
        logger.info("Applied purge %s (%s): %d objects", entry.entry_id, entry.message.purge_id, affected)


class Readiness(Protocol):
    ready: bool
    reason: str


async def follow_purge_bus(
    consumer: PurgeConsumer, apply: Callable[[BusEntry], Awaitable[None]], state: Readiness
) -> None:
    """Catch up (then report ready), then apply purges as they come; forever (cancel the task to stop)."""
    while True:
        try:
            applied = await consumer.catch_up(apply)
            logger.info("Caught up with the purge bus (%d purges applied)", applied)
            state.ready = True
            await consumer.run(apply)
        except (OSError, aiohttp.ClientError, ConnectionError) as exc:
            state.ready = False
            state.reason = f"purge bus unreachable: {exc}"
            logger.warning("Purge bus unreachable: %s", exc)
            await asyncio.sleep(1.0)  # reconnect backoff
        except Exception as exc:  # the consumer must outlive any one bad moment (CancelledError is not one)
            state.ready = False
            state.reason = f"purge consumer failed: {exc}"
            logger.exception("Purge consumer failed; restarting it")
            await asyncio.sleep(1.0)
