"""The origin's Prometheus metrics, in a registry of its own (names from ``edgefleet.metric_names``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from edgefleet import metric_names as names


class OriginMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.requests = Counter(names.ORIGIN_REQUESTS, "Requests served", ["method", "code"], registry=self.registry)
        self.request_duration = Histogram(
            names.ORIGIN_REQUEST_DURATION,
            "Request latency",
            ["method"],
            buckets=names.LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.bytes_served = Counter(names.ORIGIN_BYTES_SERVED, "Body bytes sent", registry=self.registry)
        self.variant_generations = Counter(
            names.ORIGIN_VARIANT_GENERATIONS, "Image variants generated", ["format"], registry=self.registry
        )
        self.variant_duration = Histogram(
            names.ORIGIN_VARIANT_DURATION,
            "Image variant generation time",
            ["format"],
            buckets=names.LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.storage_errors = Counter(
            names.ORIGIN_STORAGE_ERRORS, "Storage backend failures", ["operation"], registry=self.registry
        )
        self.outbox_pending = Gauge(
            names.ORIGIN_OUTBOX_PENDING,
            "Object changes stored but not yet published to the purge bus",
            registry=self.registry,
        )
        self.outbox_published = Counter(
            names.ORIGIN_OUTBOX_PUBLISHED,
            "Object changes published to the purge bus through the outbox",
            registry=self.registry,
        )
