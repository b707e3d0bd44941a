"""CdnCluster status from what the Deployments report: pure functions over the typed status models."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edgefleet.api.cdncluster import ComponentStatus, Condition

CONDITION_ORDER = ("Ready", "Progressing", "Degraded", "AutoscalerHealthy", "OriginBound")


def now_rfc3339(at: float | None = None) -> str:
    moment = dt.datetime.now(dt.UTC) if at is None else dt.datetime.fromtimestamp(at, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(text: str | None) -> float | None:
    """Unix time of an RFC 3339 timestamp as the operator writes them; None for None."""
    if not text:
        return None
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()


@dataclass(frozen=True)
class Replicas:
    desired: int
    replicas: int
    ready: int

    @property
    def complete(self) -> bool:
        return self.ready >= self.desired

    def as_status(self) -> ComponentStatus:
        return ComponentStatus(replicas=self.replicas, ready_replicas=self.ready, desired_replicas=self.desired)


def replicas_of(deployment: Mapping[str, Any] | None, desired: int) -> Replicas:
    status = (deployment or {}).get("status") or {}
    return Replicas(desired, int(status.get("replicas") or 0), int(status.get("readyReplicas") or 0))


def condition(kind: str, ok: bool, reason: str, message: str, generation: int | None) -> Condition:
    """A condition as computed now; ``merge_conditions`` decides its transition time."""
    return Condition(
        type=kind,
        status="True" if ok else "False",
        reason=reason,
        message=message,
        observed_generation=generation,
        last_transition_time="",
    )


def parse_conditions(raw: Sequence[Mapping[str, Any]] | None) -> list[Condition]:
    """Conditions as stored on an object (anything unreadable is dropped, to be written afresh)."""
    out = []
    for item in raw or []:
        try:
            out.append(Condition.model_validate(item))
        except ValueError:
            continue
    return out


def merge_conditions(
    existing: Sequence[Condition], updates: Sequence[Condition], now: str | None = None
) -> list[Condition]:
    """Replace conditions by type, keeping lastTransitionTime when the status did not change, and keeping
    conditions owned by others (the autoscaler's AutoscalerHealthy)."""
    by_type = {c.type: c for c in existing}
    stamp = now or now_rfc3339()
    for update in updates:
        previous = by_type.get(update.type)
        held = previous is not None and previous.status == update.status and previous.last_transition_time
        transition = previous.last_transition_time if held and previous is not None else stamp
        by_type[update.type] = update.model_copy(update={"last_transition_time": transition})

    def rank(c: Condition) -> int:
        return CONDITION_ORDER.index(c.type) if c.type in CONDITION_ORDER else len(CONDITION_ORDER)

    return sorted(by_type.values(), key=rank)


def fleet_conditions(
    components: Mapping[str, Replicas], generation: int | None, problem: str | None
) -> list[Condition]:
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
