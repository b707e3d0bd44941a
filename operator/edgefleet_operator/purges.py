"""PurgeRequest progress, decided purely from who was expected, who acknowledged and who is still there."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from edgefleet.api import PurgePhase


@dataclass(frozen=True)
class Progress:
    phase: PurgePhase
    acknowledged: list[str]
    pending: list[str]
    message: str
    duration_ms: int | None = None


def progress(
    expected: list[str],
    acks: Mapping[str, float],
    present: Collection[str],
    started_at: float,
    now: float,
    timeout: float,
) -> Progress:
    """An edge that left the fleet (its pod is gone) no longer holds anything to purge: it counts as done."""
    acknowledged = [edge for edge in expected if edge in acks]
    pending = [edge for edge in expected if edge not in acks and edge in present]
    departed = [edge for edge in expected if edge not in acks and edge not in present]
    if not pending:
        last = max((acks[edge] for edge in acknowledged), default=now)
        duration = round(max(0.0, last - started_at) * 1000)
        note = f"; {', '.join(departed)} left the fleet" if departed else ""
        return Progress(PurgePhase.COMPLETE, acknowledged, [],
                        f"Purged on {len(acknowledged)} of {len(expected)} edges{note}", duration)  # fmt: skip
    if now - started_at > timeout:
        return Progress(PurgePhase.FAILED, acknowledged, pending,
                        f"Edges did not confirm within {timeout:.0f}s: {', '.join(pending)}")  # fmt: skip
    return Progress(PurgePhase.PROPAGATING, acknowledged, pending,
                    f"Waiting for {len(pending)} of {len(expected)} edges")  # fmt: skip
