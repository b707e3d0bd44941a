"""The autoscaler in the operator: one task for every CdnCluster with ``spec.autoscaling.enabled``.

Each fleet is evaluated every ``spec.autoscaling.interval``: read its metrics from Prometheus, ask the pure
``decide`` function, and when it says so set the edge count through the CdnCluster's scale subresource (the
reconcile then resizes the edge Deployment). Every decision is explained in ``status.lastScale`` and an Event.
Without metrics it holds the current size and says why in the ``AutoscalerHealthy`` condition: it never
scales on missing data.

One task sleeping until the next fleet is due, rather than a kopf timer per fleet: a timer must tick at one
fixed rate for every fleet (it ticked every second to honour each fleet's interval) and kopf logs every tick
at INFO, 86,400 lines a day per fleet that say nothing. The fleets come from kopf's CdnCluster index.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import kopf

from edgefleet.api import GROUP, VERSION, CdnCluster
from edgefleet.api.cdncluster import CdnClusterStatus, Condition, FleetMetrics, ScalingDecision
from edgefleet.autoscale.decision import Decision, PastDecision, Sample, decide
from edgefleet.autoscale.sources import MetricsSource, MetricsUnavailable, PrometheusSource
from edgefleet.autoscale.spec import scaling_spec

from .errors import Gone, mapped
from .indexes import Key, clusters_index, only
from .render import name_of
from .status import condition, merge_conditions, now_rfc3339, parse_conditions
from .writers import ObjectRef

if TYPE_CHECKING:
    from .context import Runtime

logger = logging.getLogger(__name__)

IDLE_WAKE = 300.0
"""Longest sleep with no fleet due (CdnCluster events wake the autoscaler anyway)."""


@dataclass
class ClusterMemory:
    samples: deque[Sample] = field(default_factory=lambda: deque(maxlen=600))
    history: list[PastDecision] = field(default_factory=list)
    next_due: float = 0.0


def fleet_selector(cluster: CdnCluster) -> str:
    """PromQL matchers for this fleet's edges, as the ServiceMonitor the operator renders labels them."""
    return f'namespace="{cluster.metadata.namespace}",job="{name_of(cluster, "edge")}"'


def fleet_metrics(sample: Sample) -> FleetMetrics:
    values = {name: round(value, 4) for name, value in sample.as_dict().items() if value is not None}
    return FleetMetrics.model_validate(values)


def source_for(cluster: CdnCluster) -> MetricsSource:
    url = cluster.spec.autoscaling.prometheus_url
    if url is None:
        raise MetricsUnavailable("spec.autoscaling.prometheusUrl is not set (in-cluster scraping needs it)")
    return PrometheusSource(url, selector=fleet_selector(cluster))


class Autoscaler:
    def __init__(self, runtime: Runtime, clusters: kopf.Index[Key, CdnCluster]) -> None:
        self.runtime = runtime
        self.clusters = clusters
        self.memories: dict[str, ClusterMemory] = {}
        self.wake = asyncio.Event()

    def notice(self) -> None:
        self.wake.set()

    async def run(self) -> None:
        while True:
            self.wake.clear()
            delay = await self.round(time.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=delay)

    async def round(self, now: float) -> float:
        """Evaluate every fleet that is due; the seconds until the next one is."""
        due = IDLE_WAKE
        live: set[str] = set()
        for key in list(self.clusters.keys()):
            cluster = only(self.clusters, key)
            if cluster is None or not cluster.spec.autoscaling.enabled or cluster.metadata.uid is None:
                continue
            live.add(cluster.metadata.uid)
            memory = self.memories.setdefault(cluster.metadata.uid, ClusterMemory())
            if memory.next_due <= now:
                memory.next_due = now + cluster.spec.autoscaling.interval_seconds
                try:
                    await self.evaluate(cluster, memory, now)
                except (kopf.TemporaryError, kopf.PermanentError, Gone) as exc:
                    logger.warning("Autoscaling CdnCluster %s/%s failed (%s); retrying at its next interval",
                                   key[0], key[1], exc)  # fmt: skip
            due = min(due, memory.next_due - now)
        for uid in [uid for uid in self.memories if uid not in live]:
            del self.memories[uid]
        return max(0.0, due)

    async def evaluate(self, cluster: CdnCluster, memory: ClusterMemory, now: float) -> None:
        runtime = self.runtime
        ref = ObjectRef("CdnCluster", cluster.metadata.namespace, cluster.metadata.name, cluster.metadata.uid or "")
        gauge = runtime.autoscaler_healthy.labels(cluster.metadata.namespace, cluster.metadata.name)
        generation = cluster.metadata.generation
        try:
            sample: Sample | None = await source_for(cluster).sample()
        except MetricsUnavailable as exc:
            sample, unavailable = None, str(exc)
        # Conditions are one list written whole by two writers (the reconcile and the autoscaler): merge into the
        # stored list as it is now, and write only if it has not changed meanwhile (else retry next interval).
        with mapped(f"reading CdnCluster {cluster.metadata.name}"):
            stored = await asyncio.to_thread(
                runtime.custom.get_namespaced_custom_object, GROUP, VERSION, cluster.metadata.namespace,
                "cdnclusters", cluster.metadata.name,
            )  # fmt: skip
        existing = parse_conditions((stored.get("status") or {}).get("conditions"))
        version = str(stored["metadata"].get("resourceVersion") or "")
        if sample is None:
            gauge.set(0)
            unhealthy = condition("AutoscalerHealthy", False, "MetricsUnavailable",
                                  f"Holding the fleet: {unavailable}", generation)  # fmt: skip
            status = CdnClusterStatus(conditions=merge_conditions(existing, [unhealthy]))
            await runtime.status.write(ref, status, resource_version=version)
            runtime.scaling_decisions.labels("hold").inc()
            return
        gauge.set(1)
        memory.samples.append(sample)
        current = CdnCluster.model_validate(stored).spec.edge.replicas.effective
        decision = decide(current, scaling_spec(cluster.spec), list(memory.samples), memory.history, now)
        # Says why it holds (within targets, too few requests behind the sample, waiting for a fresh one).
        message = f"Metrics available; {decision.reason}" if decision.direction == "hold" else "Metrics available"
        updates = [condition("AutoscalerHealthy", True, "MetricsAvailable", message, generation),
                   origin_condition(decision, generation)]  # fmt: skip
        status = CdnClusterStatus(metrics=fleet_metrics(sample), conditions=merge_conditions(existing, updates))
        if decision.replicas != current:
            status.last_scale = ScalingDecision(
                time=now_rfc3339(now), from_replicas=current, to_replicas=decision.replicas, reason=decision.reason,
                metrics=fleet_metrics(decision.used or sample), samples=[now_rfc3339(s.at) for s in decision.samples],
            )  # fmt: skip
        # Status first, guarded by the version read: a conflict leaves everything for the next interval.
        await runtime.status.write(ref, status, resource_version=version)
        runtime.scaling_decisions.labels(decision.direction).inc()
        was_bound = any(c.type == "OriginBound" and c.status == "True" for c in existing)
        if decision.bottleneck == "origin" and not was_bound:
            await runtime.events.post(ref, "Warning", "OriginBound", decision.reason.removeprefix("holding: "))
        if decision.replicas == current:
            return
        with mapped(f"scaling CdnCluster {cluster.metadata.name}"):
            await asyncio.to_thread(
                runtime.custom.patch_namespaced_custom_object_scale, GROUP, VERSION, cluster.metadata.namespace,
                "cdnclusters", cluster.metadata.name, {"spec": {"replicas": decision.replicas}},
            )  # fmt: skip
        memory.history.append(PastDecision(now, current, decision.replicas, tuple(s.at for s in decision.samples)))
        scaled = f"Scaled edges from {current} to {decision.replicas}: {decision.reason}"
        await runtime.events.post(ref, "Normal", "Scaled", scaled)


def origin_condition(decision: Decision, generation: int | None) -> Condition:
    """OriginBound: True while latency is high because requests wait for the origin (more edges cannot help)."""
    if decision.bottleneck == "origin":
        return condition("OriginBound", True, "MissLatencyAboveTarget", decision.reason.removeprefix("holding: "),
                         generation)  # fmt: skip
    return condition("OriginBound", False, "OriginKeepsUp", "Misses are not what makes the fleet slow", generation)


async def start_autoscaler(memo: Any, **indices: Any) -> None:
    runtime: Runtime = memo["runtime"]
    autoscaler = Autoscaler(runtime, clusters_index(indices))
    runtime.services["autoscaler"] = autoscaler
    runtime.tasks.append(asyncio.get_running_loop().create_task(autoscaler.run(), name="autoscaler"))


def register(registry: kopf.OperatorRegistry, runtime: Runtime) -> None:
    """The autoscaler starts with the operator (its metrics live on ``runtime``; stopping is ``handlers``')."""
    kopf.on.startup(registry=registry)(start_autoscaler)
