"""When is a purge complete? Decided here, once, for the operator, ``edgefleet purge`` and the demo.

A purge is complete when every edge that was a member when it was issued has acknowledged it, or has left
the fleet (an edge that is gone holds nothing to purge; a new edge catches up from the bus before it is
ready). It has failed when an edge that is still there has not acknowledged within the timeout.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum


class PurgeOutcome(StrEnum):
    PROPAGATING = "Propagating"
    COMPLETE = "Complete"
    FAILED = "Failed"


@dataclass(frozen=True)
class PurgeProgress:
    outcome: PurgeOutcome
    expected: tuple[str, ...]
    acknowledged: tuple[str, ...]
    """Expected edges that acknowledged, in the expected order."""
    pending: tuple[str, ...]
    """Expected edges still in the fleet that have not acknowledged."""
    departed: tuple[str, ...]
    """Expected edges that left the fleet without acknowledging: they count as done."""
    duration_ms: int | None
    """Publication to the last acknowledgement, once complete."""
    message: str

    @property
    def finished(self) -> bool:
        return self.outcome is not PurgeOutcome.PROPAGATING


def purge_progress(
    expected: Sequence[str],
    acks: Mapping[str, float],
    present: Collection[str],
    started_at: float,
    now: float,
    timeout: float,
) -> PurgeProgress:
    """``acks``: edge -> unix time of its acknowledgement; ``present``: edges in the fleet now (ready or not)."""
    acknowledged = tuple(edge for edge in expected if edge in acks)
    pending = tuple(edge for edge in expected if edge not in acks and edge in present)
    departed = tuple(edge for edge in expected if edge not in acks and edge not in present)
    if not pending:
        last = max((acks[edge] for edge in acknowledged), default=started_at)
        duration = round(max(0.0, last - started_at) * 1000)
        note = f"; {', '.join(departed)} left the fleet" if departed else ""
        message = f"Purged on {len(acknowledged)} of {len(expected)} edges{note}"
        return PurgeProgress(PurgeOutcome.COMPLETE, tuple(expected), acknowledged, (), departed, duration, message)
    if now - started_at > timeout:
        message = f"Edges did not confirm within {timeout:.0f}s: {', '.join(pending)}"
        return PurgeProgress(PurgeOutcome.FAILED, tuple(expected), acknowledged, pending, departed, None, message)
    message = f"Waiting for {len(pending)} of {len(expected)} edges"
    return PurgeProgress(PurgeOutcome.PROPAGATING, tuple(expected), acknowledged, pending, departed, None, message)
