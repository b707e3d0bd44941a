"""CdnCluster status from what the Deployments report: pure functions, Kubernetes-style conditions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Replicas:
    desired: int
    replicas: int
    ready: int

    @property
    def complete(self) -> bool:
        return self.ready >= self.desired

    def as_status(self) -> dict[str, int]:
        return {"replicas": self.replicas, "readyReplicas": self.ready, "desiredReplicas": self.desired}


def replicas_of(deployment: Mapping[str, Any] | None, desired: int) -> Replicas:
    status = (deployment or {}).get("status") or {}
    return Replicas(desired, int(status.get("replicas") or 0), int(status.get("readyReplicas") or 0))


def condition(kind: str, ok: bool, reason: str, message: str, generation: int | None) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }


def merge_conditions(
    existing: Sequence[Mapping[str, Any]], updates: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Replace conditions by type, keeping lastTransitionTime when the status did not change, and keeping
    conditions owned by others (the autoscaler's AutoscalerHealthy)."""
    by_type = {c["type"]: dict(c) for c in existing}
    stamp = now_rfc3339()
    for update in updates:
        previous = by_type.get(update["type"])
        changed = previous is None or previous.get("status") != update["status"]
        transition = stamp if changed or previous is None else previous.get("lastTransitionTime", stamp)
        by_type[update["type"]] = {**update, "lastTransitionTime": transition}
    order = ["Ready", "Progressing", "Degraded", "AutoscalerHealthy"]
    return sorted(by_type.values(), key=lambda c: order.index(c["type"]) if c["type"] in order else len(order))


def fleet_conditions(
    components: Mapping[str, Replicas], generation: int | None, problem: str | None
) -> list[dict[str, Any]]:
    lagging = [f"{name} {r.ready}/{r.desired} ready" for name, r in components.items() if not r.complete]
    if problem is not None:
        return [
            condition("Ready", False, "ReconcileFailed", problem, generation),
            condition("Progressing", False, "ReconcileFailed", "Waiting for the problem to be fixed", generation),
            condition("Degraded", True, "ReconcileFailed", problem, generation),
        ]
    if lagging:
        message = "Waiting for " + ", ".join(lagging)
        return [
            condition("Ready", False, "ComponentsNotReady", message, generation),
            condition("Progressing", True, "RollingOut", message, generation),
            condition("Degraded", False, "AsExpected", "No problems found", generation),
        ]
    return [
        condition("Ready", True, "AllComponentsReady", "Origin, edges and balancer are ready", generation),
        condition("Progressing", False, "Stable", "Everything matches the spec", generation),
        condition("Degraded", False, "AsExpected", "No problems found", generation),
    ]
