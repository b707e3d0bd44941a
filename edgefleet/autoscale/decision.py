"""The autoscaling decision: pure, explainable, used by the operator and by ``edgefleet up``.

Scale on what shoppers feel (p95 latency) and what protects the origin (hit ratio, origin request
rate), knowing when more edges help: with consistent hashing, more edges add cache capacity, which
raises the hit ratio only when the working set does not fit (high evictions). A cold cache after a
deploy (low hit ratio, cache not full, no evictions) is not a reason to scale.

Latency is split by where it comes from. Slow *hits* mean the edges themselves are saturated: more edges help.
Slow *misses* with fast hits mean requests wait for the origin (a cold catalogue, the origin making image
variants): more edges cannot help and would cost cache locality, so the decision holds and names the origin
as the bottleneck (``Decision.bottleneck``).

Decisions rest on evidence: a sample counts only with at least ``min_requests`` requests behind it, a
decision that changes the fleet uses only samples taken wholly after the last change (so one sample never
drives two changes, and a p95 from before a scale-up never triggers another), and it names the samples it
used.

Up is fast (one stabilisation window, usually zero, then at most ``max_step`` edges); down is slow
(everything healthy for the whole down window, then one edge) and never while caches are full and
evicting (that would shrink a working set that barely fits). A tolerance band around every target
keeps the fleet from flapping at its edge.
"""

from __future__ import annotations

import math
import time
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
    hit_p95_latency_ms: float | None = None
    """p95 of requests served from cache (hit, stale): what the edges themselves cost."""
    miss_p95_latency_ms: float | None = None
    """p95 of requests that waited for the origin."""
    requests: float | None = None
    """Requests the sample was computed from (None: unknown)."""
    window_seconds: float = 0.0
    """The span the sample summarises, ending at ``at`` (a rate window, the time between two scrapes)."""

    @property
    def window_start(self) -> float:
        return self.at - self.window_seconds

    def as_dict(self) -> dict[str, float | None]:
        return {
            "hit_ratio": self.hit_ratio,
            "p95_latency_ms": self.p95_latency_ms,
            "hit_p95_latency_ms": self.hit_p95_latency_ms,
            "miss_p95_latency_ms": self.miss_p95_latency_ms,
            "requests": self.requests,
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
    min_requests: int = 0
    """Fewest requests a sample must summarise to count (a p95 of three requests is noise)."""


@dataclass(frozen=True)
class PastDecision:
    at: float
    from_replicas: int
    to_replicas: int
    samples: tuple[float, ...] = ()
    """Times of the samples it used."""


@dataclass(frozen=True)
class Decision:
    replicas: int
    current: int
    reason: str
    used: Sample | None = None
    signals: tuple[str, ...] = field(default_factory=tuple)
    samples: tuple[Sample, ...] = ()
    """Every sample the decision rested on, oldest first (``used`` is the newest)."""
    bottleneck: str | None = None
    """"origin" when latency is high because requests wait for the origin, which more edges cannot fix."""

    @property
    def direction(self) -> str:
        if self.replicas > self.current:
            return "up"
        if self.replicas < self.current:
            return "down"
        return "hold"


def _latency_breach(sample: Sample, spec: ScalingSpec) -> str | None:
    """Latency more edges would fix: slow hits, or (without the hit/miss split) slow requests overall."""
    target = spec.targets.p95_latency_ms * (1 + spec.tolerance)
    hit = sample.hit_p95_latency_ms
    if hit is not None:
        if hit > target:
            return f"p95 latency of cache hits {hit:.0f} ms above target {spec.targets.p95_latency_ms:.0f} ms"
        return None
    if sample.miss_p95_latency_ms is None and sample.p95_latency_ms is not None and sample.p95_latency_ms > target:
        return f"p95 latency {sample.p95_latency_ms:.0f} ms above target {spec.targets.p95_latency_ms:.0f} ms"
    return None


def origin_bound(sample: Sample, spec: ScalingSpec) -> str | None:
    """Why latency is high although the edges are fast, or None: misses wait for the origin, hits do not."""
    target = spec.targets.p95_latency_ms * (1 + spec.tolerance)
    hit, miss = sample.hit_p95_latency_ms, sample.miss_p95_latency_ms
    if miss is None or miss <= target or (hit is not None and hit > target):
        return None
    hits = f"hits take {hit:.0f} ms" if hit is not None else "no request was a hit"
    return (f"origin-bound: p95 latency of misses {miss:.0f} ms above target {spec.targets.p95_latency_ms:.0f} ms "
            f"while {hits}; more edges cannot help")  # fmt: skip


def _breaches(sample: Sample, spec: ScalingSpec) -> list[str]:
    """Signals that more edges would help, each phrased for a person."""
    t, tol = spec.targets, spec.tolerance
    reasons = []
    latency = _latency_breach(sample, spec)
    if latency is not None:
        reasons.append(latency)
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
    if sample.p95_latency_ms > t.p95_latency_ms * (1 - tol) and origin_bound(sample, spec) is None:
        return False  # slow edges: keep them (slow only because of the origin: edges are not what is short)
    if sample.origin_requests_per_second is not None and sample.origin_requests_per_second > (
        t.origin_requests_per_second * (1 - tol)
    ):
        return False
    # Shrinking while caches are full and evicting would push the working set out.
    return not ((sample.cache_fill or 0.0) >= FULL_CACHE and (sample.evictions_per_second or 0.0) > 0.0)


def describe(samples: Sequence[Sample]) -> str:
    """Names the samples a decision used, for its reason."""
    if not samples:
        return "no samples"
    requests = [s.requests for s in samples if s.requests is not None]
    counted = f", {sum(requests):.0f} requests" if requests else ""
    stamps = ", ".join(time.strftime("%H:%M:%S", time.gmtime(s.at)) for s in samples[-3:])
    more = f"{len(samples) - 3} earlier and " if len(samples) > 3 else ""
    return f"{len(samples)} sample{'s' if len(samples) != 1 else ''} ({more}at {stamps} UTC{counted})"


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
    measured = [s for s in samples if s.p95_latency_ms is not None and not math.isnan(s.p95_latency_ms)]
    if not measured:
        return Decision(current, current, "holding: no metrics (never scales on missing data)")
    usable = [s for s in measured if spec.min_requests <= 0 or (s.requests or 0.0) >= spec.min_requests]
    if not usable:
        few = measured[-1].requests
        return Decision(current, current, f"holding: {few or 0:.0f} requests in the latest sample, fewer than the "
                        f"{spec.min_requests} a decision needs", measured[-1])  # fmt: skip
    # Evidence about the fleet as it is now: samples wholly after the last change, and never one a change used.
    changes = [d for d in history if d.to_replicas != d.from_replicas]
    last_change = max((d.at for d in changes), default=-math.inf)
    last_used = max((at for d in changes for at in d.samples), default=-math.inf)
    fresh = [s for s in usable if s.window_start >= last_change and s.at > last_used]
    if not fresh:
        return Decision(current, current, "holding: no sample taken wholly since the last change yet", usable[-1])
    latest = fresh[-1]

    up_window = [s for s in fresh if s.at >= now - spec.scale_up_window] or [latest]
    breaches_all = [_breaches(s, spec) for s in up_window]
    if all(breaches_all):
        reasons = breaches_all[-1]
        evidence = describe(up_window)
        if current >= spec.max_replicas:
            return Decision(current, current, f"at max {spec.max_replicas} edges: " + "; ".join(reasons), latest,
                            tuple(reasons), tuple(up_window))  # fmt: skip
        step = min(spec.max_step, spec.max_replicas - current)
        return Decision(current + step, current, "; ".join(reasons) + f" [{evidence}]", latest, tuple(reasons),
                        tuple(up_window))  # fmt: skip
    bottleneck = origin_bound(latest, spec)
    if bottleneck is not None:
        return Decision(current, current, f"holding: {bottleneck}", latest, (bottleneck,), (latest,), "origin")

    window_start = now - spec.scale_down_window
    in_window = [s for s in fresh if s.at >= window_start]
    covered = bool(in_window) and in_window[0].at <= window_start + max(1.0, spec.scale_down_window * 0.1)
    if (
        current > spec.min_replicas
        and last_change <= window_start
        and covered
        and all(_comfortably_healthy(s, spec) for s in in_window)
    ):
        reason = (
            f"healthy for {spec.scale_down_window:.0f}s (p95 {latest.p95_latency_ms:.0f} ms) [{describe(in_window)}]"
        )
        return Decision(current - 1, current, reason, latest, (), tuple(in_window))
    return Decision(current, current, "holding: within targets", latest)
