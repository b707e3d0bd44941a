"""PurgeRequest status from the request, the bus's acknowledgements, the edge pods and the time: a decision
table, and the one definition of "complete" shared with ``edgefleet purge`` and the demo."""

from __future__ import annotations

import pytest
from edgefleet_operator.purges import EdgePod, changed, expires_at, published_status, purge_status, ready_edges

from edgefleet.api import PurgePhase, PurgeRequest
from edgefleet.purge_progress import PurgeOutcome, purge_progress

STARTED = 1_700_000_000.0


def published(expected: list[str], ttl: int | None = None) -> PurgeRequest:
    request = PurgeRequest.model_validate(
        {"metadata": {"name": "p", "namespace": "shop", "uid": "u1"},
         "spec": {"cluster": "shop", "paths": ["/a.jpg"], "ttlSecondsAfterFinished": ttl}}
    )  # fmt: skip
    request.status = published_status(expected, "1-0", STARTED, 1)
    return request


def pods(*names: str) -> list[EdgePod]:
    return [EdgePod(name, ready=True) for name in names]


@pytest.mark.parametrize(
    ("acks", "present", "now", "phase", "pending"),
    [
        ({"e1": STARTED + 0.2, "e2": STARTED + 0.4}, ("e1", "e2"), STARTED + 1, PurgePhase.COMPLETE, []),
        ({"e1": STARTED + 0.2}, ("e1", "e2"), STARTED + 1, PurgePhase.PROPAGATING, ["e2"]),
        ({"e1": STARTED + 0.2}, ("e1", "e2"), STARTED + 61, PurgePhase.FAILED, ["e2"]),
        ({"e1": STARTED + 0.2}, ("e1",), STARTED + 1, PurgePhase.COMPLETE, []),
        ({}, (), STARTED + 1, PurgePhase.COMPLETE, []),
    ],
    ids=["all-acked", "one-waiting", "one-timed-out", "departed-edge-counts-as-done", "every-edge-left"],
)
def test_purge_status_decides_phase(
    acks: dict[str, float], present: tuple[str, ...], now: float, phase: PurgePhase, pending: list[str]
) -> None:
    status = purge_status(published(["e1", "e2"]), acks, pods(*present), now, timeout=60.0)
    assert (status.phase, status.pending_edges) == (phase, pending)
    assert (status.completed_at is not None) == phase.finished


def test_purge_status_duration_runs_to_the_last_ack() -> None:
    acks = {"e1": STARTED + 0.2, "e2": STARTED + 0.45}
    status = purge_status(published(["e1", "e2"]), acks, pods("e1", "e2"), STARTED + 5, 60.0)
    assert status.duration_ms == 450 and status.acked == "2/2"


def test_purge_status_failure_names_the_silent_edges() -> None:
    status = purge_status(published(["e1", "e2", "e3"]), {"e2": STARTED + 0.1}, pods("e1", "e2", "e3"),
                          STARTED + 100, 60.0)  # fmt: skip
    assert status.phase is PurgePhase.FAILED
    assert "e1, e3" in (status.message or "") and status.acknowledged_edges == ["e2"]


def test_unchanged_progress_is_not_written_again() -> None:
    request = published(["e1", "e2"])
    first = purge_status(request, {"e1": STARTED + 0.1}, pods("e1", "e2"), STARTED + 1, 60.0)
    assert request.status is not None
    request.status = request.status.model_copy(update=first.model_dump(exclude_unset=True))  # as a merge patch
    again = purge_status(request, {"e1": STARTED + 0.1}, pods("e1", "e2"), STARTED + 2, 60.0)
    assert not changed(request.status, again)
    assert changed(request.status, purge_status(request, {"e1": 1.0, "e2": 2.0}, pods(), STARTED + 3, 60.0))


def test_new_purges_wait_only_for_ready_edges_that_are_not_leaving() -> None:
    edges = [EdgePod("e2", True), EdgePod("e1", True), EdgePod("e3", False), EdgePod("e4", True, terminating=True)]
    assert ready_edges(edges) == ["e1", "e2"]


def test_finished_purge_expires_after_its_ttl_and_never_without_one() -> None:
    done = published(["e1"], ttl=30)
    assert expires_at(done) is None, "still propagating"
    assert done.status is not None
    done.status = purge_status(done, {"e1": STARTED + 0.1}, pods("e1"), STARTED + 1, 60.0)
    assert expires_at(done) == STARTED + 1 + 1 + 30, "30 s after it completed, never sooner (to the second)"
    forever = published(["e1"])
    forever.status = done.status
    assert expires_at(forever) is None


@pytest.mark.parametrize(
    ("acks", "present", "outcome"),
    [
        ({"a": 1.0, "b": 1.0}, {"a", "b"}, PurgeOutcome.COMPLETE),
        ({"a": 1.0}, {"a"}, PurgeOutcome.COMPLETE),
        ({"a": 1.0}, {"a", "b"}, PurgeOutcome.PROPAGATING),
    ],
    ids=["everyone-acked", "silent-edge-left", "silent-edge-still-there"],
)
def test_purge_is_complete_when_every_member_acknowledged_or_left(
    acks: dict[str, float], present: set[str], outcome: PurgeOutcome
) -> None:
    """The one definition behind the operator, ``edgefleet purge --wait`` and the demo."""
    assert purge_progress(["a", "b"], acks, present, 0.0, 1.0, 30.0).outcome is outcome
