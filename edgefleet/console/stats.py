"""Per-edge numbers and the fleet's last hour, from the edges' /metrics or from Prometheus.

``EdgeSampler`` scrapes every edge each ``interval`` and keeps an hour of fleet-wide points in memory;
``PrometheusHistory`` asks Prometheus for the same series over the last hour when one is configured.
Both produce ``FleetPoint`` rows; ``fleet_charts`` turns them into the shared charts (``edgefleet.charts``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from edgefleet import metric_names as names
from edgefleet.autoscale.sources import HIT_STATUSES, quantile_from_buckets
from edgefleet.charts import Chart, Marker, Series

from .fleet_view import EdgeRef, FleetView, ScalingEvent

logger = logging.getLogger(__name__)

HOUR = 3600.0


@dataclass
class EdgeSnapshot:
    at: float
    requests: dict[str, float] = field(default_factory=dict)
    buckets: dict[float, float] = field(default_factory=dict)
    origin: float = 0.0
    stored: dict[str, float] = field(default_factory=dict)
    """tier -> bytes stored."""
    capacity: dict[str, float] = field(default_factory=dict)
    """tier -> bytes configured."""


def parse_snapshot(text: str, at: float) -> EdgeSnapshot:
    snap = EdgeSnapshot(at=at)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == names.EDGE_REQUESTS:
                status = labels.get("cache_status", "")
                snap.requests[status] = snap.requests.get(status, 0.0) + sample.value
            elif sample.name == names.EDGE_REQUEST_DURATION + "_bucket":
                le = float(labels["le"])
                snap.buckets[le] = snap.buckets.get(le, 0.0) + sample.value
            elif sample.name == names.EDGE_ORIGIN_REQUESTS:
                snap.origin += sample.value
            elif sample.name == names.EDGE_CACHE_BYTES:
                tier = labels.get("tier", "")
                snap.stored[tier] = snap.stored.get(tier, 0.0) + sample.value
            elif sample.name == names.EDGE_CACHE_CAPACITY:
                tier = labels.get("tier", "")
                snap.capacity[tier] = snap.capacity.get(tier, 0.0) + sample.value
    return snap


@dataclass(frozen=True)
class Rates:
    """What happened between two snapshots."""

    requests: float
    cacheable: float
    hits: float
    origin: float
    buckets: dict[float, float]
    seconds: float


def rates(before: EdgeSnapshot, after: EdgeSnapshot) -> Rates:
    def delta(a: float, b: float) -> float:
        return max(0.0, b - a)  # a restarted edge's counters start again at zero

    requests = {k: delta(before.requests.get(k, 0.0), v) for k, v in after.requests.items()}
    return Rates(
        requests=sum(requests.values()),
        cacheable=sum(v for k, v in requests.items() if k != "bypass"),
        hits=sum(v for k, v in requests.items() if k in HIT_STATUSES),
        origin=delta(before.origin, after.origin),
        buckets={le: delta(before.buckets.get(le, 0.0), v) for le, v in after.buckets.items()},
        seconds=max(1e-6, after.at - before.at),
    )


@dataclass(frozen=True)
class EdgeNumbers:
    name: str
    hit_ratio: float | None
    p95_ms: float | None
    requests_per_second: float | None
    memory_bytes: float
    memory_capacity: float
    disk_bytes: float
    disk_capacity: float


@dataclass(frozen=True)
class FleetPoint:
    at: float
    hit_ratio: float | None
    p95_ms: float | None
    requests_per_second: float | None
    origin_offload: float | None
    edges: int


def fleet_point(at: float, window: Sequence[Rates], edges: int) -> FleetPoint:
    requests = sum(r.requests for r in window)
    cacheable = sum(r.cacheable for r in window)
    buckets: dict[float, float] = {}
    for r in window:
        for le, count in r.buckets.items():
            buckets[le] = buckets.get(le, 0.0) + count
    p95 = quantile_from_buckets(buckets, 0.95) if requests else None
    seconds = max((r.seconds for r in window), default=0.0)
    return FleetPoint(
        at=at,
        hit_ratio=sum(r.hits for r in window) / cacheable if cacheable else None,
        p95_ms=p95 * 1000 if p95 is not None else None,
        requests_per_second=requests / seconds if seconds else None,
        origin_offload=1 - sum(r.origin for r in window) / requests if requests else None,
        edges=edges,
    )


class EdgeSampler:
    """Scrapes the edges every ``interval`` seconds; keeps per-edge numbers and an hour of fleet points."""

    def __init__(self, view: FleetView, admin_token: str | None, interval: float) -> None:
        self.view = view
        self.headers = {"Authorization": f"Bearer {admin_token}"} if admin_token else {}
        self.interval = interval
        self.points: deque[FleetPoint] = deque(maxlen=int(HOUR / max(interval, 0.5)) + 1)
        self.scaling: deque[ScalingEvent] = deque(maxlen=200)
        self.edges: list[EdgeNumbers] = []
        self._previous: dict[str, EdgeSnapshot] = {}
        self.samples_taken = 0

    async def _scrape(self, session: aiohttp.ClientSession, edge: EdgeRef) -> EdgeSnapshot | None:
        try:
            async with session.get(f"{edge.admin_url}/metrics", headers=self.headers) as response:
                if response.status != 200:
                    return None
                return parse_snapshot(await response.text(), time.time())
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    async def sample_once(self) -> None:
        edges = await self.view.edges()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session:
            snaps = await asyncio.gather(*(self._scrape(session, e) for e in edges))
        current = {e.name: s for e, s in zip(edges, snaps, strict=True) if s is not None}
        numbers, window = [], []
        for edge in edges:
            snap = current.get(edge.name)
            if snap is None:
                continue
            before = self._previous.get(edge.name)
            r = rates(before, snap) if before is not None else None
            if r is not None:
                window.append(r)
            p95 = quantile_from_buckets(r.buckets, 0.95) if r is not None and r.requests else None
            numbers.append(
                EdgeNumbers(
                    name=edge.name,
                    hit_ratio=r.hits / r.cacheable if r is not None and r.cacheable else None,
                    p95_ms=p95 * 1000 if p95 is not None else None,
                    requests_per_second=r.requests / r.seconds if r is not None else None,
                    memory_bytes=snap.stored.get("memory", 0.0),
                    memory_capacity=snap.capacity.get("memory", 0.0),
                    disk_bytes=snap.stored.get("disk", 0.0),
                    disk_capacity=snap.capacity.get("disk", 0.0),
                )
            )
        self._previous = current
        self.edges = numbers
        if window:
            self.points.append(fleet_point(time.time(), window, len(current)))
        event = await self.view.last_scaling()
        if event is not None and (not self.scaling or self.scaling[-1].at != event.at):
            self.scaling.append(event)
        self.samples_taken += 1

    async def run(self) -> None:
        while True:
            try:
                await self.sample_once()
            except Exception:  # one failed round must not end the charts; the next round tries again
                logger.exception("Failed to sample the edges' metrics")
            await asyncio.sleep(self.interval)  # the sampling period itself, not a readiness wait


def prometheus_queries(selector: str = "") -> dict[str, str]:
    sel = "{" + selector + "}" if selector else ""
    hits = "{" + ",".join(p for p in (selector, 'cache_status=~"hit|stale"') if p) + "}"
    cacheable = "{" + ",".join(p for p in (selector, 'cache_status!="bypass"') if p) + "}"
    memory = "{" + ",".join(p for p in (selector, 'tier="memory"') if p) + "}"
    req, duration = names.EDGE_REQUESTS, names.EDGE_REQUEST_DURATION + "_bucket"
    return {
        "hit_ratio": f"sum(rate({req}{hits}[1m])) / sum(rate({req}{cacheable}[1m]))",
        "p95_ms": f"histogram_quantile(0.95, sum by (le) (rate({duration}{sel}[1m]))) * 1000",
        "requests_per_second": f"sum(rate({req}{sel}[1m]))",
        "origin_offload": f"1 - sum(rate({names.EDGE_ORIGIN_REQUESTS}{sel}[1m])) / sum(rate({req}{sel}[1m]))",
        "edges": f"count({names.EDGE_CACHE_CAPACITY}{memory})",
    }


class PrometheusHistory:
    """The last hour from Prometheus' range API, one point per ``step`` seconds."""

    def __init__(self, url: str, selector: str = "", step: float = 15.0) -> None:
        self.url = url.rstrip("/")
        self.queries = prometheus_queries(selector)
        self.step = step

    async def points(self, now: float | None = None) -> list[FleetPoint]:
        end = time.time() if now is None else now
        series: dict[str, dict[float, float]] = {}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            for name, expr in self.queries.items():
                params = {"query": expr, "start": str(end - HOUR), "end": str(end), "step": str(self.step)}
                async with session.get(f"{self.url}/api/v1/query_range", params=params) as response:
                    payload = await response.json(content_type=None)
                if payload.get("status") != "success":
                    raise aiohttp.ClientError(f"Prometheus refused {name}: {payload.get('error')}")
                values: dict[float, float] = {}
                for result in payload["data"]["result"][:1]:
                    for at, raw in result["values"]:
                        value = float(raw)
                        if math.isfinite(value):
                            values[float(at)] = value
                series[name] = values
        times = sorted({t for values in series.values() for t in values})
        return [
            FleetPoint(
                at=t,
                hit_ratio=series["hit_ratio"].get(t),
                p95_ms=series["p95_ms"].get(t),
                requests_per_second=series["requests_per_second"].get(t),
                origin_offload=series["origin_offload"].get(t),
                edges=int(series["edges"].get(t, 0)),
            )
            for t in times
        ]


def _nan(value: float | None, scale: float = 1.0) -> float:
    return math.nan if value is None else value * scale


def fleet_charts(points: Sequence[FleetPoint], markers: Sequence[Marker]) -> list[Chart]:
    """The console's five charts of the last hour, marked with scaling decisions and purges."""

    def line(label: str, pick: str, scale: float = 1.0) -> Series:
        return Series(label, [(p.at, _nan(getattr(p, pick), scale)) for p in points])

    return [
        Chart("Cache hit ratio", "%", [line("answered from cache", "hit_ratio", 100.0)],
              "The share of cacheable requests the edges answered without asking the origin; dashed lines mark "
              "scaling decisions and purges.", markers, "clock", y_max=100.0, chart_id="chart-hit-ratio"),
        Chart("Latency (p95)", "ms", [line("95th percentile", "p95_ms")],
              "95 in 100 shopper requests were answered faster than this line.", markers, "clock",
              chart_id="chart-p95"),
        Chart("Requests", "req/s", [line("requests across the fleet", "requests_per_second")],
              "Requests per second reaching all edges together.", markers, "clock", chart_id="chart-requests"),
        Chart("Origin offload", "%", [line("kept away from the origin", "origin_offload", 100.0)],
              "The share of requests the edges answered without a trip to the origin.", markers, "clock",
              y_max=100.0, chart_id="chart-offload"),
        Chart("Edges", "edges", [line("edges serving", "edges")],
              "How many edges served; each scaling decision is marked with its reason.", markers, "clock",
              chart_id="chart-edges", whole_numbers=True),
    ]  # fmt: skip


def scaling_markers(events: Sequence[ScalingEvent]) -> list[Marker]:
    return [Marker(e.at, f"{e.from_edges}→{e.to_edges} edges: {e.reason}"[:60]) for e in events]
