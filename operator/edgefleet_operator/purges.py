"""PurgeRequest status, decided purely from the request, the bus's acknowledgements, the edge pods and the time.

Whether a purge is complete is decided by ``edgefleet.purge_progress`` (shared with ``edgefleet purge`` and the
demo); this module turns that into the ``PurgeRequestStatus`` the operator writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from edgefleet.api import PurgePhase, PurgeRequest
from edgefleet.api.purgerequest import PurgeRequestStatus
from edgefleet.purge_progress import PurgeOutcome, purge_progress

from .status import epoch, now_rfc3339


@dataclass(frozen=True)
class EdgePod:
    """An edge pod as the pod index holds it."""

    name: str
    ready: bool
    terminating: bool = False


def ready_edges(pods: Iterable[EdgePod]) -> list[str]:
    """The members a new purge waits for: ready edge pods that are not shutting down."""
    return sorted(pod.name for pod in pods if pod.ready and not pod.terminating)


def published_status(expected: list[str], entry_id: str, now: float, generation: int | None) -> PurgeRequestStatus:
    return PurgeRequestStatus(
        phase=PurgePhase.PROPAGATING, purge_id=entry_id, expected_edges=expected, acknowledged_edges=[],
        pending_edges=expected, acked=f"0/{len(expected)}", started_at=now_rfc3339(now),
        message=f"Published to {len(expected)} edges", observed_generation=generation,
    )  # fmt: skip


def failed_status(message: str, now: float) -> PurgeRequestStatus:
    return PurgeRequestStatus(phase=PurgePhase.FAILED, message=message, completed_at=now_rfc3339(now))


_PHASES = {
    PurgeOutcome.PROPAGATING: PurgePhase.PROPAGATING,
    PurgeOutcome.COMPLETE: PurgePhase.COMPLETE,
    PurgeOutcome.FAILED: PurgePhase.FAILED,
}


def purge_status(
    request: PurgeRequest, acks: Mapping[str, float], pods: Iterable[EdgePod], now: float, timeout: float
) -> PurgeRequestStatus:
    """The status of a published purge now. ``pods``: the cluster's edge pods that exist (any state); an
    expected edge whose pod is gone has left the fleet and counts as done."""
    current = request.status or PurgeRequestStatus()
    expected = list(current.expected_edges)
    started = epoch(current.started_at) or now
    progress = purge_progress(expected, acks, {pod.name for pod in pods}, started, now, timeout)
    status = PurgeRequestStatus(
        phase=_PHASES[progress.outcome], acknowledged_edges=list(progress.acknowledged),
        pending_edges=list(progress.pending), acked=f"{len(progress.acknowledged)}/{len(expected)}",
        message=progress.message,
    )  # fmt: skip
    if progress.finished:
        status.completed_at = now_rfc3339(now)
        if progress.duration_ms is not None:
            status.duration_ms = progress.duration_ms
    return status


def changed(before: PurgeRequestStatus | None, after: PurgeRequestStatus) -> bool:
    """Whether writing ``after`` (a partial status) would change anything in ``before``."""
    if before is None:
        return True
    return any(getattr(before, name) != getattr(after, name) for name in after.model_fields_set)


def expires_at(request: PurgeRequest) -> float | None:
    """When a finished request is to be deleted (``ttlSecondsAfterFinished``), else None."""
    status, ttl = request.status, request.spec.ttl_seconds_after_finished
    if status is None or ttl is None or not status.phase.finished:
        return None
    finished = epoch(status.completed_at)
    # completedAt is kept to the second, rounded down: round up, so a request never goes before its TTL.
    return None if finished is None else finished + 1 + ttl
