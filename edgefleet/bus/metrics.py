"""Metrics a bus consumer keeps, on the registry of the component that runs it."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from edgefleet import metric_names as names


class ConsumerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.dead_letters = Counter(
            names.BUS_DEAD_LETTERS.removesuffix("_total"),
            "Bus entries that could not be read, recorded as dead letters and skipped.",
            ["stream"],
            registry=registry,
        )
