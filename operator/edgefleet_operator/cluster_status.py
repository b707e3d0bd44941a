"""The CdnCluster's status, written by the reconcile and by owned-object events, never stale over fresh.

Each writer reads the CdnCluster, then the Deployments, and writes a status computed from what it read. An
unconditional write lands whenever it lands: the reconcile's status, read before a rollout finished, used to be
patched by kopf after the handler returned and could replace the Ready status an owned Deployment event had written
meanwhile; nothing corrected it until the drift timer. So every write here names the resourceVersion of the
CdnCluster read *before* the Deployments it reports (a merge patch carrying ``metadata.resourceVersion`` is a
precondition: the API server answers 409 if the object changed since). On a conflict the writer reads again and
recomputes. Invariant: the status that lands last was computed from Deployments read after every earlier status
write; a Deployment change after that read is a watch event whose handler writes again.

The reconcile writes here itself and puts nothing in kopf's ``patch.status``: kopf's own patch has no precondition.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from edgefleet.api import GROUP, VERSION
from edgefleet.api.cdncluster import CdnClusterStatus, Condition

from . import bus_history
from .context import Runtime
from .errors import RETRY_DELAY, Conflict, Gone, mapped
from .status import merge_conditions, parse_conditions
from .writers import ObjectRef

logger = logging.getLogger(__name__)

ATTEMPTS = 5
"""Guarded writes before giving up for now (each conflict means another writer wrote a fresher status)."""

Recompute = Callable[[Mapping[str, Any]], CdnClusterStatus | None]
"""From the CdnCluster as just read: the status to write, or None when there is nothing (left) to write. Runs in a
worker thread: it reads the Deployments."""


def resource_version(body: Mapping[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("resourceVersion") or "")


def with_conditions(
    status: CdnClusterStatus,
    conditions: list[Condition],
    stored: Mapping[str, Any],
    bus: tuple[str, bool] | None = None,
    now: dt.datetime | None = None,
) -> CdnClusterStatus:
    """Pure: ``status`` with ``conditions`` merged into those ``stored`` on the CdnCluster, and, after a look at the
    purge bus (its epoch, whether its history was lost), the epoch and the history condition."""
    existing = parse_conditions((stored.get("status") or {}).get("conditions"))
    updates = list(conditions)
    out = status.model_copy(deep=True)
    if bus is not None:
        out.purge_bus_epoch, lost = bus
        generation = (stored.get("metadata") or {}).get("generation")
        updates.append(bus_history.history_condition(lost, existing, now or dt.datetime.now(dt.UTC), generation))
    out.conditions = merge_conditions(existing, updates)
    return out


def read_cluster(runtime: Runtime, namespace: str, name: str) -> dict[str, Any] | None:
    """The CdnCluster as stored now (blocking), or None when it is gone or being deleted: no status to write."""
    try:
        with mapped(f"reading CdnCluster {name}"):
            body: dict[str, Any] = runtime.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, "cdnclusters", name
            )
    except Gone:
        return None
    if body["metadata"].get("deletionTimestamp"):
        return None
    return body


async def write_guarded(
    runtime: Runtime, ref: ObjectRef, read: Mapping[str, Any], status: CdnClusterStatus, recompute: Recompute
) -> None:
    """Write ``status``, computed from ``read`` and what was read after it, unless the CdnCluster changed since
    ``read``; then read it again, ``recompute`` and try again. Raises ``kopf.TemporaryError`` after ``ATTEMPTS``
    conflicts in a row."""
    for _ in range(ATTEMPTS):
        try:
            await runtime.status.write(ref, status, resource_version=resource_version(read))
            return
        except Conflict:
            logger.debug("Status of CdnCluster %s/%s changed meanwhile; recomputing", ref.namespace, ref.name)
        fresh = await asyncio.to_thread(read_cluster, runtime, ref.namespace, ref.name)
        if fresh is None:
            return
        again = await asyncio.to_thread(recompute, fresh)
        if again is None:
            return
        read, status = fresh, again
    raise kopf.TemporaryError(f"The status of CdnCluster {ref.name} kept changing while being written",
                              delay=RETRY_DELAY)  # fmt: skip
