"""Where fleet metrics come from: Prometheus (the HTTP API), or the edges' /metrics scraped directly.

Both return a ``Sample`` for the decision function. A source that cannot answer raises
``MetricsUnavailable``; the caller holds the fleet's size (never scales on missing data).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from edgefleet import metric_names as names
from edgefleet.api.units import parse_seconds

from .decision import Sample

HIT_STATUSES = frozenset({"hit", "stale"})


class MetricsUnavailable(RuntimeError):
    """The metrics source could not be queried (the message says why)."""


class MetricsSource(Protocol):
    async def sample(self) -> Sample: ...


# ---- Prometheus ----------------------------------------------------------------------------------


def _matchers(*parts: str) -> str:
    present = [part for part in parts if part]
    return "{" + ",".join(present) + "}" if present else ""


def promql(selector: str = "", window: str = "1m") -> dict[str, str]:
    """The PromQL the autoscaler runs (documented in docs/autoscaling.md). ``selector`` narrows to one
    fleet, e.g. ``namespace="shop",job="shop-edge"``."""
    req, sel = names.EDGE_REQUESTS, _matchers(selector)
    hits = _matchers(selector, 'cache_status=~"hit|stale"')
    cacheable = _matchers(selector, 'cache_status!="bypass"')
    memory = _matchers(selector, 'tier="memory"')
    misses = _matchers(selector, 'cache_status!~"hit|stale"')
    duration = names.EDGE_REQUEST_DURATION + "_bucket"

    def p95(matchers: str) -> str:
        return f"histogram_quantile(0.95, sum by (le) (rate({duration}{matchers}[{window}]))) * 1000"

    return {
        "hit_ratio": f"sum(rate({req}{hits}[{window}])) / sum(rate({req}{cacheable}[{window}]))",
        "p95_latency_ms": p95(sel),
        "hit_p95_latency_ms": p95(hits),
        "miss_p95_latency_ms": p95(misses),
        "requests": f"sum(increase({req}{sel}[{window}]))",
        "requests_per_second": f"sum(rate({req}{sel}[{window}])) / count({names.EDGE_CACHE_CAPACITY}{memory})",
        "origin_requests_per_second": f"sum(rate({names.EDGE_ORIGIN_REQUESTS}{sel}[{window}]))",
        "evictions_per_second": f"sum(rate({names.EDGE_EVICTIONS}{sel}[{window}]))",
        "cache_fill": f"sum({names.EDGE_CACHE_BYTES}{memory}) / sum({names.EDGE_CACHE_CAPACITY}{memory})",
    }


class PrometheusSource:
    def __init__(self, url: str, selector: str = "", window: str = "1m", timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.queries = promql(selector, window)
        self.window_seconds = parse_seconds(window)
        self.timeout = timeout

    async def _query(self, session: aiohttp.ClientSession, expr: str) -> float | None:
        try:
            async with session.get(f"{self.url}/api/v1/query", params={"query": expr}) as response:
                payload = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise MetricsUnavailable(f"Prometheus at {self.url} did not answer: {exc}") from exc
        if payload.get("status") != "success":
            raise MetricsUnavailable(f"Prometheus rejected a query: {payload.get('error', payload)}")
        result = payload["data"]["result"]
        if not result:
            return None
        value = float(result[0]["value"][1])
        return None if math.isnan(value) or math.isinf(value) else value

    async def sample(self) -> Sample:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as session:
            values = {name: await self._query(session, expr) for name, expr in self.queries.items()}
        return Sample(at=time.time(), window_seconds=self.window_seconds, **values)


# ---- direct scrape -------------------------------------------------------------------------------


@dataclass
class _Snapshot:
    at: float
    requests: dict[str, float] = field(default_factory=dict)
    """cache_status -> count."""
    buckets: dict[str, dict[float, float]] = field(default_factory=dict)
    """cache_status -> le -> cumulative count."""
    origin: float = 0.0
    evictions: float = 0.0
    cache_bytes: float = 0.0
    cache_capacity: float = 0.0


def parse_edge_metrics(text: str, at: float) -> _Snapshot:
    snap = _Snapshot(at=at)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == names.EDGE_REQUESTS:
                status = labels.get("cache_status", "")
                snap.requests[status] = snap.requests.get(status, 0.0) + sample.value
            elif sample.name == names.EDGE_REQUEST_DURATION + "_bucket":
                le = float(labels["le"])
                per_status = snap.buckets.setdefault(labels.get("cache_status", ""), {})
                per_status[le] = per_status.get(le, 0.0) + sample.value
            elif sample.name == names.EDGE_ORIGIN_REQUESTS:
                snap.origin += sample.value
            elif sample.name == names.EDGE_EVICTIONS:
                snap.evictions += sample.value
            elif sample.name == names.EDGE_CACHE_BYTES and labels.get("tier") == "memory":
                snap.cache_bytes += sample.value
            elif sample.name == names.EDGE_CACHE_CAPACITY and labels.get("tier") == "memory":
                snap.cache_capacity += sample.value
    return snap


def quantile_from_buckets(buckets: dict[float, float], q: float) -> float | None:
    """Like PromQL's histogram_quantile: linear interpolation inside the bucket holding the rank."""
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] <= 0:
        return None
    total = ordered[-1][1]
    rank = q * total
    previous_le, previous_count = 0.0, 0.0
    for le, count in ordered:
        if count >= rank:
            if math.isinf(le):
                return previous_le
            width = count - previous_count
            fraction = (rank - previous_count) / width if width > 0 else 1.0
            return previous_le + (le - previous_le) * fraction
        previous_le, previous_count = le, count
    return previous_le


class DirectScrapeSource:
    """Scrapes every edge's admin /metrics and computes rates between consecutive scrapes."""

    def __init__(self, targets: Callable[[], Sequence[str]], token: str | None, timeout: float = 3.0) -> None:
        self.targets = targets
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.timeout = timeout
        self._previous: dict[str, _Snapshot] = {}

    async def sample(self) -> Sample:
        now = time.time()
        current: dict[str, _Snapshot] = {}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as session:
            for url in self.targets():
                try:
                    async with session.get(url, headers=self.headers) as response:
                        if response.status != 200:
                            continue
                        current[url] = parse_edge_metrics(await response.text(), now)
                except (aiohttp.ClientError, TimeoutError):
                    continue  # a dead edge contributes nothing; the supervisor restarts it
        if not current:
            raise MetricsUnavailable("no edge answered /metrics")
        previous, self._previous = self._previous, current
        pairs = [(previous[url], snap) for url, snap in current.items() if url in previous]
        fill = sum(s.cache_bytes for s in current.values()) / max(1.0, sum(s.cache_capacity for s in current.values()))
        if not pairs:
            return Sample(at=now, cache_fill=fill)
        elapsed = max(1e-6, now - pairs[0][0].at)
        requests: dict[str, float] = {}
        buckets: dict[float, float] = {}
        hit_buckets: dict[float, float] = {}
        miss_buckets: dict[float, float] = {}
        origin = evictions = 0.0
        for before, after in pairs:
            for status, count in after.requests.items():
                requests[status] = requests.get(status, 0.0) + max(0.0, count - before.requests.get(status, 0.0))
            for status, per_status in after.buckets.items():
                earlier = before.buckets.get(status, {})
                side = hit_buckets if status in HIT_STATUSES else miss_buckets
                for le, count in per_status.items():
                    grown = max(0.0, count - earlier.get(le, 0.0))
                    buckets[le] = buckets.get(le, 0.0) + grown
                    side[le] = side.get(le, 0.0) + grown
            origin += max(0.0, after.origin - before.origin)
            evictions += max(0.0, after.evictions - before.evictions)
        total = sum(requests.values())
        cacheable = sum(v for k, v in requests.items() if k != "bypass")
        hits = sum(v for k, v in requests.items() if k in HIT_STATUSES)
        p95 = quantile_from_buckets(buckets, 0.95)
        hit_p95 = quantile_from_buckets(hit_buckets, 0.95)
        miss_p95 = quantile_from_buckets(miss_buckets, 0.95)
        return Sample(
            at=now,
            window_seconds=elapsed,
            requests=total,
            hit_p95_latency_ms=hit_p95 * 1000 if hit_p95 is not None else None,
            miss_p95_latency_ms=miss_p95 * 1000 if miss_p95 is not None else None,
            hit_ratio=hits / cacheable if cacheable else None,
            p95_latency_ms=p95 * 1000 if p95 is not None and total else None,
            requests_per_second=total / elapsed / len(pairs),
            origin_requests_per_second=origin / elapsed,
            evictions_per_second=evictions / elapsed,
            cache_fill=fill,
        )
