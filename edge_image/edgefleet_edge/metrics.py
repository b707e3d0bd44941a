"""The edge's Prometheus metrics (names from edgefleet.metric_names), on a registry of its own."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from edgefleet import metric_names as names

from .store import Store


class _StoreCollector(Collector):
    """Reads tier sizes and evictions from the store at scrape time (nothing to update per request)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        used = GaugeMetricFamily(names.EDGE_CACHE_BYTES, "Bytes stored per tier.", labels=["tier"])
        objects = GaugeMetricFamily(names.EDGE_CACHE_OBJECTS, "Objects stored per tier.", labels=["tier"])
        capacity = GaugeMetricFamily(names.EDGE_CACHE_CAPACITY, "Configured bytes per tier.", labels=["tier"])
        evictions = CounterMetricFamily(
            names.EDGE_EVICTIONS.removesuffix("_total"), "Objects evicted for space.", labels=["tier"]
        )
        declined = CounterMetricFamily(
            names.EDGE_ADMISSIONS_DECLINED.removesuffix("_total"), "New objects admission did not store.",
            labels=["tier"],
        )  # fmt: skip
        tier_evictions = self.store.evictions()
        for tier, (nbytes, count, cap) in self.store.tier_stats().items():
            used.add_metric([tier], nbytes)
            objects.add_metric([tier], count)
            capacity.add_metric([tier], cap)
            evictions.add_metric([tier], tier_evictions[tier])
            declined.add_metric([tier], self.store.stats.declined[tier])
        corrupt = CounterMetricFamily(
            names.EDGE_CORRUPT_BODIES.removesuffix("_total"), "Stored bodies found damaged when read, and evicted."
        )
        corrupt.add_metric([], self.store.stats.corrupt)
        disk_errors = CounterMetricFamily(
            names.EDGE_DISK_WRITE_ERRORS.removesuffix("_total"), "Disk tier writes that failed; served unstored."
        )
        disk_errors.add_metric([], self.store.stats.disk_errors)
        yield from (used, objects, capacity, evictions, declined, corrupt, disk_errors)


class PlainHitTally:
    """Plain hits, their body bytes and their latencies, counted in plain numbers and folded into the Prometheus
    metrics by ``EdgeMetrics.flush`` (at every scrape and once a second).

    Why: ``Counter.inc`` takes a lock and three Python calls, and ``Histogram.observe`` a lock and a Python
    loop over the buckets; together they were a quarter of a plain hit's cost (cProfile on the recognised-
    request path). Here a hit is a few additions and one ``bisect_left(bounds, seconds)`` (``PlainHits``).
    """

    __slots__ = ("bounds", "bytes", "hits", "latency_counts", "latency_sum")

    def __init__(self) -> None:
        self.hits = 0
        self.bytes = 0
        self.bounds: tuple[float, ...] = (*names.LATENCY_BUCKETS, float("inf"))
        """The histogram's upper bounds; a latency belongs to the first bound it does not exceed."""
        self.latency_counts = [0] * len(self.bounds)
        self.latency_sum = 0.0


class PurgeMetrics:
    """Purges applied: the edge's own, or with ``--workers`` > 1 the supervisor's (it counts each purge once)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.purges = Counter(
            names.EDGE_PURGES_APPLIED.removesuffix("_total"), "Purges applied from the bus.", ["kind"], registry=r
        )
        self.purge_lag = Gauge(names.EDGE_PURGE_LAG, "Seconds from a purge's issue to its application.", registry=r)


class EdgeMetrics(PurgeMetrics):
    def __init__(self, store: Store, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        super().__init__(r)
        self.requests = Counter(
            names.EDGE_REQUESTS.removesuffix("_total"), "Client requests.", ["cache_status", "code"], registry=r
        )
        self.duration = Histogram(
            names.EDGE_REQUEST_DURATION, "Client request latency.", ["cache_status"],
            buckets=names.LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.origin_requests = Counter(
            names.EDGE_ORIGIN_REQUESTS.removesuffix("_total"), "Requests sent to the origin.", ["code"], registry=r
        )
        self.origin_duration = Histogram(
            names.EDGE_ORIGIN_DURATION, "Origin response time (to headers).", buckets=names.LATENCY_BUCKETS, registry=r
        )
        self.bytes_served = Counter(
            names.EDGE_BYTES_SERVED.removesuffix("_total"), "Body bytes sent to clients.", registry=r
        )
        r.register(_StoreCollector(store))
        self.plain_hits = PlainHitTally()

    def flush(self) -> None:
        """Fold the plain-hit tally into the exported metrics."""
        tally = self.plain_hits
        hits, sent = tally.hits, tally.bytes
        counts, latency_sum = tally.latency_counts, tally.latency_sum
        tally.hits = tally.bytes = 0
        tally.latency_counts, tally.latency_sum = [0] * len(counts), 0.0
        if hits:
            self.requests.labels("hit", "200").inc(hits)
        if sent:
            self.bytes_served.inc(sent)
        if any(counts):
            # prometheus_client cannot add many observations at once. Its Histogram child keeps one value per
            # bucket (made cumulative at collection) and one for the sum, as ``_buckets`` and ``_sum`` (so since
            # 0.4, in single- and multi-process mode alike); tests/edge/test_plain_requests.py checks the
            # exported histogram against the hits served, so a change there fails loudly, not silently.
            child = self.duration.labels("hit")
            for bucket, count in zip(child._buckets, counts, strict=True):
                if count:
                    bucket.inc(count)
            child._sum.inc(latency_sum)
