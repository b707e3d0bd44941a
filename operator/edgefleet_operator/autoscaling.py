"""The autoscaler in the operator: a kopf timer per CdnCluster with ``spec.autoscaling.enabled``.

Each evaluation reads the fleet's metrics from Prometheus, asks the pure ``decide`` function, and when it
says so sets the edge count through the CdnCluster's scale subresource (the reconcile then resizes the
edge Deployment). Every decision is explained in ``status.lastScale`` and an Event. Without metrics it
holds the current size and says why in the ``AutoscalerHealthy`` condition: it never scales on missing data.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import kopf
from prometheus_client import Counter, Gauge

from edgefleet import metric_names as names
from edgefleet.api import GROUP, VERSION, CdnCluster
from edgefleet.autoscale.decision import PastDecision, Sample, decide
from edgefleet.autoscale.sources import MetricsUnavailable, PrometheusSource
from edgefleet.autoscale.spec import scaling_spec

from .render import name_of
from .status import condition, merge_conditions, now_rfc3339

TICK_SECONDS = 1.0
"""kopf timers have one fixed interval; each cluster's own ``spec.autoscaling.interval`` is honoured by
skipping ticks until it has elapsed."""


@dataclass
class ClusterMemory:
    samples: deque[Sample] = field(default_factory=lambda: deque(maxlen=600))
    history: list[PastDecision] = field(default_factory=list)
    last_evaluation: float = 0.0


def fleet_selector(cluster: CdnCluster) -> str:
    """PromQL matchers for this fleet's edges, as the ServiceMonitor the operator renders labels them."""
    return f'namespace="{cluster.metadata.namespace}",job="{name_of(cluster, "edge")}"'


def status_metrics(sample: Sample) -> dict[str, float]:
    wire = {
        "hitRatio": sample.hit_ratio,
        "p95LatencyMs": sample.p95_latency_ms,
        "requestsPerSecond": sample.requests_per_second,
        "originRequestsPerSecond": sample.origin_requests_per_second,
        "evictionsPerSecond": sample.evictions_per_second,
        "cacheFill": sample.cache_fill,
    }
    return {k: round(v, 4) for k, v in wire.items() if v is not None}


def register(registry: kopf.OperatorRegistry, runtime: Any) -> None:
    decisions = Counter(names.OPERATOR_SCALING_DECISIONS.removesuffix("_total"), "Autoscaling decisions.",
                        ["direction"], registry=runtime.registry)  # fmt: skip
    healthy = Gauge(names.OPERATOR_AUTOSCALER_HEALTHY, "1 when the autoscaler has the metrics it needs.",
                    ["namespace", "cluster"], registry=runtime.registry)  # fmt: skip
    memories: dict[str, ClusterMemory] = {}

    @kopf.timer(GROUP, VERSION, "cdnclusters", registry=registry, interval=TICK_SECONDS,
                field="spec.autoscaling.enabled", value=True)  # fmt: skip
    async def autoscale(body: kopf.Body, meta: kopf.Meta, patch: kopf.Patch, **_: Any) -> None:
        cluster = CdnCluster.model_validate(dict(body))
        memory = memories.setdefault(str(meta["uid"]), ClusterMemory())
        now = time.time()
        if now - memory.last_evaluation < cluster.spec.autoscaling.interval_seconds:
            return
        memory.last_evaluation = now
        existing = (body.get("status") or {}).get("conditions") or []
        gauge = healthy.labels(cluster.metadata.namespace, cluster.metadata.name)
        url = cluster.spec.autoscaling.prometheus_url
        try:
            if url is None:
                raise MetricsUnavailable("spec.autoscaling.prometheusUrl is not set (in-cluster scraping needs it)")
            sample = await PrometheusSource(url, selector=fleet_selector(cluster)).sample()
        except MetricsUnavailable as exc:
            gauge.set(0)
            patch.status["conditions"] = merge_conditions(
                existing,
                [
                    condition(
                        "AutoscalerHealthy",
                        False,
                        "MetricsUnavailable",
                        f"Holding the fleet: {exc}",
                        cluster.metadata.generation,
                    )
                ],
            )
            decisions.labels("hold").inc()
            return
        gauge.set(1)
        memory.samples.append(sample)
        current = cluster.spec.edge.replicas.effective
        decision = decide(current, scaling_spec(cluster.spec), list(memory.samples), memory.history, now)
        decisions.labels(decision.direction).inc()
        message = "Metrics available" if decision.used is not None else decision.reason
        patch.status["metrics"] = status_metrics(sample)
        patch.status["conditions"] = merge_conditions(
            existing, [condition("AutoscalerHealthy", True, "MetricsAvailable", message, cluster.metadata.generation)]
        )
        if decision.replicas == current:
            return
        await asyncio.to_thread(
            runtime.custom.patch_namespaced_custom_object_scale, GROUP, VERSION, cluster.metadata.namespace,
            "cdnclusters", cluster.metadata.name, {"spec": {"replicas": decision.replicas}},
        )  # fmt: skip
        memory.history.append(PastDecision(now, current, decision.replicas))
        patch.status["lastScale"] = {
            "time": now_rfc3339(), "fromReplicas": current, "toReplicas": decision.replicas,
            "reason": decision.reason, "metrics": status_metrics(sample),
        }  # fmt: skip
        kopf.event(body, type="Normal", reason="Scaled",
                   message=f"Scaled edges from {current} to {decision.replicas}: {decision.reason}")  # fmt: skip
