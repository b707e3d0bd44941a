"""The autoscaling decision: pure, explainable, used by the operator and by ``edgefleet up``.

Scale on what shoppers feel (p95 latency) and what protects the origin (hit ratio, origin request
rate), knowing when more edges help: with consistent hashing, more edges add cache capacity, which
raises the hit ratio only when the working set does not fit (high evictions). A cold cache after a
deploy (low hit ratio, cache not full, no evictions) is not a reason to scale.

Up is fast (one stabilisation window, usually zero, then at most ``max_step`` edges); down is slow
(everything healthy for the whole down window, then one edge) and never while caches are full and
evicting (that would shrink a working set that barely fits). A tolerance band around every target
keeps the fleet from flapping at its edge.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

FULL_CACHE = 0.9
"""Cache fill from which evictions mean the working set does not fit."""
EVICTIONS_HIGH = 1.0
"""Evictions per second across the fleet that count as "high"."""


@dataclass(frozen=True)
class Sample:
    """One observation of the fleet (any field may be missing: None)."""

    at: float
    hit_ratio: float | None = None
    p95_latency_ms: float | None = None
    requests_per_second: float | None = None
    """Per edge."""
    origin_requests_per_second: float | None = None
    evictions_per_second: float | None = None
    cache_fill: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        return {
            "hit_ratio": self.hit_ratio,
            "p95_latency_ms": self.p95_latency_ms,
            "requests_per_second": self.requests_per_second,
            "origin_requests_per_second": self.origin_requests_per_second,
            "evictions_per_second": self.evictions_per_second,
            "cache_fill": self.cache_fill,
        }


@dataclass(frozen=True)
class Targets:
    hit_ratio: float = 0.9
    p95_latency_ms: float = 50.0
    origin_requests_per_second: float = 200.0


@dataclass(frozen=True)
class ScalingSpec:
    min_replicas: int
    max_replicas: int
    targets: Targets = Targets()
    scale_up_window: float = 0.0
    scale_down_window: float = 300.0
    max_step: int = 2
    tolerance: float = 0.1


@dataclass(frozen=True)
class PastDecision:
    at: float
    from_replicas: int
    to_replicas: int


@dataclass(frozen=True)
class Decision:
    replicas: int
    current: int
    reason: str
    used: Sample | None = None
    signals: tuple[str, ...] = field(default_factory=tuple)

    @property
    def direction(self) -> str:
        if self.replicas > self.current:
            return "up"
        if self.replicas < self.current:
            return "down"
        return "hold"


def _breaches(sample: Sample, spec: ScalingSpec) -> list[str]:
    """Signals that more edges would help, each phrased for a person."""
    t, tol = spec.targets, spec.tolerance
    reasons = []
    if sample.p95_latency_ms is not None and sample.p95_latency_ms > t.p95_latency_ms * (1 + tol):
        reasons.append(f"p95 latency {sample.p95_latency_ms:.0f} ms above target {t.p95_latency_ms:.0f} ms")
    cache_bound = (sample.cache_fill or 0.0) >= FULL_CACHE and (sample.evictions_per_second or 0.0) >= EVICTIONS_HIGH
    if sample.hit_ratio is not None and sample.hit_ratio < t.hit_ratio * (1 - tol) and cache_bound:
        reasons.append(
            f"hit ratio {sample.hit_ratio:.2f} below target {t.hit_ratio:.2f} with full caches evicting "
            f"{sample.evictions_per_second:.1f}/s"
        )
    origin = sample.origin_requests_per_second
    if origin is not None and origin > t.origin_requests_per_second * (1 + tol) and cache_bound:
        reasons.append(f"origin load {origin:.0f}/s above target {t.origin_requests_per_second:.0f}/s")
    return reasons


def _comfortably_healthy(sample: Sample, spec: ScalingSpec) -> bool:
    """Inside every target with margin: hysteresis, so the fleet does not bounce at the band's edge."""
    t, tol = spec.targets, spec.tolerance
    if sample.p95_latency_ms is None:
        return False
    if sample.p95_latency_ms > t.p95_latency_ms * (1 - tol):
        return False
    if sample.origin_requests_per_second is not None and sample.origin_requests_per_second > (
        t.origin_requests_per_second * (1 - tol)
    ):
        return False
    # Shrinking while caches are full and evicting would push the working set out.
    return not ((sample.cache_fill or 0.0) >= FULL_CACHE and (sample.evictions_per_second or 0.0) > 0.0)


def decide(
    current: int,
    spec: ScalingSpec,
    samples: Sequence[Sample],
    history: Sequence[PastDecision],
    now: float,
) -> Decision:
    """The replica count to run now, and why. ``samples`` are oldest first."""
    clamped = min(max(current, spec.min_replicas), spec.max_replicas)
    if clamped != current:
        return Decision(clamped, current, f"clamped {current} into [{spec.min_replicas}, {spec.max_replicas}]")
    usable = [s for s in samples if s.p95_latency_ms is not None and not math.isnan(s.p95_latency_ms)]
    if not usable:
        return Decision(current, current, "holding: no metrics (never scales on missing data)")
    latest = usable[-1]

    up_window = [s for s in usable if s.at >= now - spec.scale_up_window] or [latest]
    breaches_all = [_breaches(s, spec) for s in up_window]
    if all(breaches_all):
        reasons = breaches_all[-1]
        if current >= spec.max_replicas:
            return Decision(current, current, f"at max {spec.max_replicas} edges: " + "; ".join(reasons), latest,
                            tuple(reasons))  # fmt: skip
        step = min(spec.max_step, spec.max_replicas - current)
        return Decision(current + step, current, "; ".join(reasons), latest, tuple(reasons))

    last_change = max((d.at for d in history if d.to_replicas != d.from_replicas), default=-math.inf)
    window_start = now - spec.scale_down_window
    in_window = [s for s in usable if s.at >= window_start]
    covered = bool(in_window) and in_window[0].at <= window_start + max(1.0, spec.scale_down_window * 0.1)
    if (
        current > spec.min_replicas
        and last_change <= window_start
        and covered
        and all(_comfortably_healthy(s, spec) for s in in_window)
    ):
        reason = f"healthy for {spec.scale_down_window:.0f}s (p95 {latest.p95_latency_ms:.0f} ms)"
        return Decision(current - 1, current, reason, latest)
    return Decision(current, current, "holding: within targets", latest)
