"""The autoscaling decision, table-driven: what it does in each situation a shop fleet meets, and why."""

from __future__ import annotations

from dataclasses import replace

import pytest

from edgefleet.autoscale.decision import Decision, PastDecision, Sample, ScalingSpec, Targets, decide

SPEC = ScalingSpec(
    min_replicas=2,
    max_replicas=8,
    targets=Targets(hit_ratio=0.9, p95_latency_ms=50, origin_requests_per_second=200),
    scale_up_window=0.0,
    scale_down_window=300.0,
    max_step=2,
    tolerance=0.1,
)
NOW = 10_000.0
HEALTHY = Sample(at=NOW, hit_ratio=0.95, p95_latency_ms=20, requests_per_second=100,
                 origin_requests_per_second=20, evictions_per_second=0, cache_fill=0.5)  # fmt: skip


def window(sample: Sample, seconds: float, step: float = 15.0) -> list[Sample]:
    """The same observation every ``step`` seconds for the last ``seconds``."""
    count = int(seconds // step) + 1
    return [replace(sample, at=NOW - seconds + i * step) for i in range(count)]


CASES = [
    ("latency-breach-scales-up", 3, window(replace(HEALTHY, p95_latency_ms=180), 60), [], 5, "p95 latency"),
    (
        "low-hit-ratio-with-full-evicting-caches-scales-up",
        3,
        window(replace(HEALTHY, hit_ratio=0.6, cache_fill=0.98, evictions_per_second=40), 60),
        [],
        5,
        "hit ratio",
    ),
    (
        "low-hit-ratio-with-unfilled-cache-holds",
        3,
        window(replace(HEALTHY, hit_ratio=0.3, cache_fill=0.2, evictions_per_second=0), 60),
        [],
        3,
        "holding",
    ),
    (
        "origin-overload-with-full-caches-scales-up",
        3,
        window(replace(HEALTHY, origin_requests_per_second=900, cache_fill=0.97, evictions_per_second=5), 60),
        [],
        5,
        "origin load",
    ),
    ("healthy-for-the-whole-window-scales-down-one", 4, window(HEALTHY, 330), [], 3, "healthy for 300s"),
    ("healthy-but-not-for-long-enough-holds", 4, window(HEALTHY, 120), [], 4, "holding"),
    (
        "recent-scale-up-blocks-scale-down",
        4,
        window(HEALTHY, 330),
        [PastDecision(NOW - 100, 2, 4)],
        4,
        "holding",
    ),
    (
        "full-evicting-caches-never-shrink",
        4,
        window(replace(HEALTHY, cache_fill=0.95, evictions_per_second=0.5), 330),
        [],
        4,
        "holding",
    ),
    ("at-max-holds", 8, window(replace(HEALTHY, p95_latency_ms=500), 60), [], 8, "at max 8"),
    ("step-is-bounded-near-max", 7, window(replace(HEALTHY, p95_latency_ms=500), 60), [], 8, "p95 latency"),
    ("at-min-never-goes-lower", 2, window(HEALTHY, 600), [], 2, "holding"),
    ("below-min-is-clamped-up", 1, window(HEALTHY, 60), [], 2, "clamped"),
    ("above-max-is-clamped-down", 12, window(HEALTHY, 60), [], 8, "clamped"),
    ("missing-data-holds", 3, [], [], 3, "no metrics"),
    (
        "samples-without-latency-hold",
        3,
        window(replace(HEALTHY, p95_latency_ms=None), 60),
        [],
        3,
        "no metrics",
    ),
]


@pytest.mark.parametrize(
    ("current", "samples", "history", "expected", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_decision(current: int, samples: list[Sample], history: list[PastDecision], expected: int, reason: str) -> None:
    decision = decide(current, SPEC, samples, history, NOW)
    assert decision.replicas == expected, decision.reason
    assert reason in decision.reason


def test_decision_reports_the_numbers_it_used() -> None:
    samples = window(replace(HEALTHY, p95_latency_ms=180), 60)
    decision = decide(3, SPEC, samples, [], NOW)
    assert decision.used == samples[-1]
    assert decision.direction == "up"
    assert "180 ms above target 50 ms" in decision.reason


def test_oscillating_load_at_the_tolerance_edge_never_flaps() -> None:
    """Latency bouncing between just inside the band (52 ms) and just under target (48 ms) for an hour."""
    current, history = 4, []
    samples: list[Sample] = []
    changes: list[Decision] = []
    for tick in range(240):  # one hour of 15 s evaluations
        at = NOW + tick * 15
        samples.append(replace(HEALTHY, at=at, p95_latency_ms=52 if tick % 2 else 48))
        decision = decide(current, SPEC, samples[-40:], history, at)
        if decision.replicas != current:
            changes.append(decision)
            history.append(PastDecision(at, current, decision.replicas))
            current = decision.replicas
    assert changes == [], [c.reason for c in changes]


def test_scale_up_waits_for_its_stabilisation_window_when_one_is_set() -> None:
    spec = replace(SPEC, scale_up_window=60.0)
    brief_spike = [*window(HEALTHY, 120)[:-1], replace(HEALTHY, p95_latency_ms=400, at=NOW)]
    assert decide(3, spec, brief_spike, [], NOW).replicas == 3
    sustained = window(replace(HEALTHY, p95_latency_ms=400), 90)
    assert decide(3, spec, sustained, [], NOW).replicas == 5


# ---- evidence: enough requests, fresh samples, one sample never drives two changes ------------------------

EVIDENCE = replace(SPEC, min_requests=100)
SLOW = replace(HEALTHY, p95_latency_ms=2194, requests=600, window_seconds=10.0)


def test_a_p95_of_a_few_requests_is_not_evidence() -> None:
    """What a new user saw: 2 -> 3 -> 4 edges within 2.4 s on a p95 computed from about three requests."""
    current, history = 2, []
    for tick in range(3):
        at = NOW + tick * 1.2
        samples = [replace(SLOW, at=at, requests=3, window_seconds=1.2)]
        decision = decide(current, EVIDENCE, samples, history, at)
        assert decision.replicas == current, decision.reason
    assert "3 requests in the latest sample, fewer than the 100 a decision needs" in decision.reason


def test_one_sample_never_drives_two_changes() -> None:
    first = decide(2, EVIDENCE, [SLOW], [], NOW)
    assert first.replicas == 4 and first.samples == (SLOW,)
    history = [PastDecision(NOW, 2, 4, tuple(s.at for s in first.samples))]
    again = decide(4, EVIDENCE, [SLOW], history, NOW + 1)
    assert again.replicas == 4, again.reason
    assert "since the last change" in again.reason


def test_samples_reaching_back_before_the_last_change_are_not_fresh() -> None:
    """A 10 s window that began before the scale-up still describes the old, smaller fleet."""
    history = [PastDecision(NOW, 2, 4, (NOW,))]
    overlapping = replace(SLOW, at=NOW + 5)
    assert decide(4, EVIDENCE, [SLOW, overlapping], history, NOW + 5).replicas == 4
    after = replace(SLOW, at=NOW + 11)
    assert decide(4, EVIDENCE, [SLOW, overlapping, after], history, NOW + 11).replicas == 6


def test_a_decision_names_the_samples_it_used() -> None:
    samples = [replace(SLOW, at=NOW - 20), replace(SLOW, at=NOW)]
    decision = decide(2, replace(EVIDENCE, scale_up_window=30.0), samples, [], NOW)
    assert decision.samples == tuple(samples)
    assert "2 samples" in decision.reason and "1200 requests" in decision.reason


# ---- hit latency (the edges) versus miss latency (the origin) -------------------------------------------


def test_slow_misses_with_fast_hits_name_the_origin_and_add_no_edges() -> None:
    """``make demo``'s first 30 s: the origin is busy making variants for a cold catalogue."""
    cold = replace(SLOW, hit_p95_latency_ms=3, miss_p95_latency_ms=2194)
    decision = decide(3, EVIDENCE, [cold], [], NOW)
    assert decision.replicas == 3
    assert decision.bottleneck == "origin"
    assert "origin-bound" in decision.reason and "2194 ms" in decision.reason


def test_slow_hits_add_edges() -> None:
    saturated = replace(SLOW, p95_latency_ms=300, hit_p95_latency_ms=180, miss_p95_latency_ms=400)
    decision = decide(3, EVIDENCE, [saturated], [], NOW)
    assert decision.replicas == 5 and decision.bottleneck is None
    assert "cache hits 180 ms" in decision.reason


def test_an_origin_bound_fleet_holds_its_edges_and_says_why() -> None:
    """Neither more edges (they cannot help) nor fewer (the slowness is not theirs to prove healthy)."""
    cold = replace(HEALTHY, p95_latency_ms=900, hit_p95_latency_ms=4, miss_p95_latency_ms=900, requests=600)
    decision = decide(4, EVIDENCE, window(cold, 330), [], NOW)
    assert decision.replicas == 4
    assert decision.bottleneck == "origin"
