"""Applying purges (from the bus or the admin API) to the store."""

from __future__ import annotations

import logging
import time

from edgefleet.bus import BusEntry, PurgeMessage

from .metrics import EdgeMetrics
from .store import Store

logger = logging.getLogger(__name__)


def apply_purge(store: Store, message: PurgeMessage, metrics: EdgeMetrics | None = None) -> int:
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
