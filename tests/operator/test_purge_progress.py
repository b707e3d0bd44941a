"""PurgeRequest progress from expected edges, acks and the pods still present: a decision table."""

from __future__ import annotations

import pytest
from edgefleet_operator.purges import progress

from edgefleet.api import PurgePhase

STARTED = 1000.0


@pytest.mark.parametrize(
    ("acks", "present", "now", "phase", "pending"),
    [
        ({"e1": 1000.2, "e2": 1000.4}, {"e1", "e2"}, 1001.0, PurgePhase.COMPLETE, []),
        ({"e1": 1000.2}, {"e1", "e2"}, 1001.0, PurgePhase.PROPAGATING, ["e2"]),
        ({"e1": 1000.2}, {"e1", "e2"}, 1061.0, PurgePhase.FAILED, ["e2"]),
        ({"e1": 1000.2}, {"e1"}, 1001.0, PurgePhase.COMPLETE, []),
        ({}, set(), 1001.0, PurgePhase.COMPLETE, []),
    ],
    ids=["all-acked", "one-waiting", "one-timed-out", "departed-edge-counts-as-done", "every-edge-left"],
)
def test_purge_progress_decides_phase(
    acks: dict[str, float], present: set[str], now: float, phase: PurgePhase, pending: list[str]
) -> None:
    result = progress(["e1", "e2"], acks, present, STARTED, now, timeout=60.0)
    assert (result.phase, result.pending) == (phase, pending)


def test_purge_progress_duration_runs_to_the_last_ack() -> None:
    result = progress(["e1", "e2"], {"e1": 1000.2, "e2": 1000.45}, {"e1", "e2"}, STARTED, 1005.0, 60.0)
    assert result.duration_ms == 450


def test_purge_progress_failure_names_the_silent_edges() -> None:
    result = progress(["e1", "e2", "e3"], {"e2": 1000.1}, {"e1", "e2", "e3"}, STARTED, 1100.0, 60.0)
    assert result.phase is PurgePhase.FAILED
    assert "e1, e3" in result.message and result.acknowledged == ["e2"]
