"""Follows published purges to completion and deletes finished ones after their TTL.

Driven by watch events and the bus, never by listing: the PurgeRequests in flight come from kopf's index of
PurgeRequests (kept from the watch stream), edge pods from the pod index, and acknowledgements from the bus.
With nothing in flight and no TTL due, the follower sleeps until a PurgeRequest event wakes it: an idle
operator makes no requests for purges at all.

It runs as one task rather than kopf timers or daemons on each PurgeRequest: those put a finalizer on every
object they serve, and a timer that deletes its own object sometimes leaves that finalizer behind
(nolar/kopf#1305), so expired requests hung in Terminating. The follower holds no finalizer; a user deleting
a PurgeRequest is never blocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

import kopf

from edgefleet.api import GROUP, VERSION, CdnCluster, PurgePhase, PurgeRequest
from edgefleet.api.purgerequest import PurgeRequestStatus
from edgefleet.api.units import parse_seconds

from .errors import RETRY_DELAY, Gone, mapped
from .indexes import Key, members, only
from .purges import EdgePod, changed, expires_at, purge_status
from .writers import EventType, ObjectRef

if TYPE_CHECKING:
    from .context import Runtime

logger = logging.getLogger(__name__)

IDLE_WAKE = 300.0
"""Longest sleep with nothing to do (a safety net; PurgeRequest events wake the follower anyway)."""


class PurgeFollower:
    def __init__(self, runtime: Runtime, purges: kopf.Index[Key, PurgeRequest],
                 clusters: kopf.Index[Key, CdnCluster], edge_pods: kopf.Index[Key, EdgePod]) -> None:  # fmt: skip
        self.runtime = runtime
        self.purges, self.clusters, self.edge_pods = purges, clusters, edge_pods
        self.wake = asyncio.Event()
        self.written: dict[Key, PurgeRequestStatus] = {}
        """What this follower last wrote for each purge (the index catches up when the watch event comes)."""
        self.expired: set[Key] = set()
        """Deleted by this follower, until the watch stream reports them gone."""
        self.rounds = 0

    def notice(self) -> None:
        """A PurgeRequest changed: look again now."""
        self.wake.set()

    async def run(self) -> None:
        while True:
            self.wake.clear()
            delay = await self.round(time.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=delay)

    async def round(self, now: float) -> float:
        """Advance every purge in flight and expire finished ones; the seconds until something is due."""
        self.rounds += 1
        due = IDLE_WAKE
        for key in list(self.purges.keys()):
            request = only(self.purges, key)
            if request is None:
                self.written.pop(key, None)
                continue
            try:
                due = min(due, await self.follow(key, request, now))
            except (kopf.TemporaryError, kopf.PermanentError) as exc:
                logger.warning("Following PurgeRequest %s/%s failed (%s); retrying", key[0], key[1], exc)
                due = min(due, RETRY_DELAY)
        for key in [k for k in self.written if k not in self.purges]:
            del self.written[key]
        self.expired &= set(self.purges.keys())
        return max(0.0, due)

    async def follow(self, key: Key, request: PurgeRequest, now: float) -> float:
        status = request.status
        if status is not None and status.phase is PurgePhase.PROPAGATING and status.purge_id:
            return await self.advance(key, request, now)
        expiry = expires_at(request)
        if expiry is None or key in self.expired:
            return IDLE_WAKE
        if expiry > now:
            return expiry - now
        await self.expire(request)
        self.expired.add(key)
        return IDLE_WAKE

    async def advance(self, key: Key, request: PurgeRequest, now: float) -> float:
        assert request.status is not None and request.status.purge_id is not None
        previous = self.written.get(key)
        if previous is not None and previous.phase is not PurgePhase.PROPAGATING:
            return IDLE_WAKE  # finished by us; the watch event with the final status is on its way
        namespace = key[0]
        cluster = only(self.clusters, (namespace, request.spec.cluster))
        if cluster is None:
            timeout, acks, pods = 0.0, {}, []
        else:
            timeout = parse_seconds(cluster.spec.purge_bus.timeout)
            with mapped(f"reading acknowledgements of PurgeRequest {key[1]}"):
                acks = await self.runtime.bus(cluster).acknowledgements(request.status.purge_id)
            pods = members(self.edge_pods, (namespace, request.spec.cluster))
        status = purge_status(request, acks, pods, now, timeout)
        if changed(previous or request.status, status):
            await self.runtime.status.write(ObjectRef.of(request.model_dump(by_alias=True)), status)
            self.written[key] = status
        if status.phase is PurgePhase.PROPAGATING:
            return self.runtime.config.ack_poll_interval
        await self.finished(request, status)
        return IDLE_WAKE

    async def finished(self, request: PurgeRequest, status: PurgeRequestStatus) -> None:
        self.runtime.purges.labels(status.phase.value).inc()
        if status.duration_ms is not None:
            self.runtime.purge_duration.observe(status.duration_ms / 1000)
        kind: EventType = "Normal" if status.phase is PurgePhase.COMPLETE else "Warning"
        ref = ObjectRef.of(request.model_dump(by_alias=True))
        await self.runtime.events.post(ref, kind, status.phase.value, status.message or "")

    async def expire(self, request: PurgeRequest) -> None:
        meta = request.metadata
        try:
            with mapped(f"deleting PurgeRequest {meta.name}"):
                await asyncio.to_thread(
                    self.runtime.custom.delete_namespaced_custom_object, GROUP, VERSION, meta.namespace,
                    "purgerequests", meta.name,
                )  # fmt: skip
        except Gone:
            return
        logger.info("Deleted PurgeRequest %s/%s %ss after it finished", meta.namespace, meta.name,
                    request.spec.ttl_seconds_after_finished)  # fmt: skip
