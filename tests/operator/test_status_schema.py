"""Every status the operator writes survives the CRD's structural schema whole.

The API server prunes fields a structural schema does not name, silently: a misspelt status key is lost
without an error. The operator writes status only through ``status_patch`` from the pydantic models; these
tests take each status it builds (fleet status in every condition state, the autoscaler's, purge status in
every phase) and check it against the generated CRDs: nothing would be pruned, every value has its type."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from edgefleet_operator.autoscaling import fleet_metrics, origin_condition
from edgefleet_operator.purges import EdgePod, failed_status, published_status, purge_status
from edgefleet_operator.reconcile import fleet_status
from edgefleet_operator.status import condition, merge_conditions
from edgefleet_operator.writers import status_patch

from edgefleet.api import CdnCluster, PurgeRequest
from edgefleet.api.base import StatusModel
from edgefleet.api.cdncluster import CdnClusterStatus, ScalingDecision
from edgefleet.autoscale.decision import Sample, ScalingSpec, Targets, decide

ROOT = Path(__file__).resolve().parents[2]
TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,), "array": (list,),
    "object": (dict,),
}  # fmt: skip


def status_schema(plural: str) -> dict[str, Any]:
    crd = yaml.safe_load((ROOT / "crds" / f"cdn.edgefleet.io_{plural}.yaml").read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    return schema


def problems(value: Any, schema: dict[str, Any], path: str = "status") -> list[str]:
    """What the API server would prune or reject in ``value`` under structural ``schema``."""
    kind = schema.get("type")
    if value is None:
        return [] if schema.get("nullable") else [f"{path}: null"]
    if kind is not None and (not isinstance(value, TYPES[kind]) or (kind != "boolean" and isinstance(value, bool))):
        return [f"{path}: {type(value).__name__} where the schema says {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{path}: {value!r} not in {schema['enum']}"]
    found: list[str] = []
    if isinstance(value, dict):
        properties = schema.get("properties")
        for key, item in value.items():
            if properties is not None and key in properties:
                found += problems(item, properties[key], f"{path}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                found += problems(item, schema["additionalProperties"], f"{path}.{key}")
            elif not schema.get("x-kubernetes-preserve-unknown-fields"):
                found.append(f"{path}.{key}: pruned (not in the schema)")
    if isinstance(value, list):
        for i, item in enumerate(value):
            found += problems(item, schema.get("items", {}), f"{path}[{i}]")
    return found


def cluster() -> CdnCluster:
    body = yaml.safe_load((ROOT / "examples" / "cdncluster.yaml").read_text())
    body["metadata"].update({"uid": "u1", "generation": 3})
    return CdnCluster.model_validate(body)


def deployment(replicas: int, ready: int) -> dict[str, Any]:
    return {"status": {"replicas": replicas, "readyReplicas": ready}}


def fleet(deployments: dict[str, Any], service: bool, problem: str | None) -> CdnClusterStatus:
    status, conditions = fleet_status(cluster(), deployments, service, problem)
    status.conditions = merge_conditions([], conditions)
    return status


SAMPLE = Sample(at=1.0, hit_ratio=0.93, p95_latency_ms=12.5, requests_per_second=40.0,
                origin_requests_per_second=3.0, evictions_per_second=0.0, cache_fill=0.4, hit_p95_latency_ms=2.0,
                miss_p95_latency_ms=2194.0, requests=412.0, window_seconds=60.0)  # fmt: skip
COLD = decide(3, ScalingSpec(2, 8, Targets(p95_latency_ms=40), min_requests=100), [SAMPLE], [], 2.0)
HEALTHY = condition("AutoscalerHealthy", True, "MetricsAvailable", "Metrics available", 3)

CLUSTER_STATUSES = {
    "ready": fleet({"origin": deployment(1, 1), "edge": deployment(2, 2), "balancer": deployment(2, 2)}, True, None),
    "rolling-out": fleet({"edge": deployment(3, 1)}, False, None),
    "degraded": fleet({}, False, "Secret shop-minio referenced by spec.origin.storage.s3 does not exist"),
    "autoscaler-holding": CdnClusterStatus(conditions=merge_conditions(
        [], [condition("AutoscalerHealthy", False, "MetricsUnavailable", "Holding the fleet: no answer", 3)])),
    "autoscaler-scaled": CdnClusterStatus(
        metrics=fleet_metrics(SAMPLE), conditions=merge_conditions([], [HEALTHY]),
        last_scale=ScalingDecision(time="2026-01-01T00:00:00Z", from_replicas=2, to_replicas=3,
                                   reason="p95 latency 120 ms above target 50 ms", metrics=fleet_metrics(SAMPLE),
                                   samples=["2026-01-01T00:00:00Z"]),
    ),
    "autoscaler-origin-bound": CdnClusterStatus(
        metrics=fleet_metrics(SAMPLE), conditions=merge_conditions([], [HEALTHY, origin_condition(COLD, 3)]),
    ),
}  # fmt: skip


def request() -> PurgeRequest:
    return PurgeRequest.model_validate(
        {"metadata": {"name": "p", "namespace": "shop", "uid": "u2", "generation": 1},
         "spec": {"cluster": "shop", "tags": ["sku-1"]}}
    )  # fmt: skip


def following(acks: dict[str, float], pods: list[str], now: float) -> StatusModel:
    published = request()
    published.status = published_status(["e1", "e2"], "1700000000000-0", 1_700_000_000.0, 1)
    return purge_status(published, acks, [EdgePod(p, True) for p in pods], now, 60.0)


PURGE_STATUSES = {
    "published": published_status(["e1", "e2"], "1700000000000-0", 1_700_000_000.0, 1),
    "cluster-missing": failed_status("CdnCluster shop not found in namespace shop", 1_700_000_000.0),
    "propagating": following({"e1": 1_700_000_000.1}, ["e1", "e2"], 1_700_000_001.0),
    "complete": following({"e1": 1_700_000_000.1, "e2": 1_700_000_000.2}, ["e1", "e2"], 1_700_000_001.0),
    "failed": following({"e1": 1_700_000_000.1}, ["e1", "e2"], 1_700_000_100.0),
}


@pytest.mark.parametrize("status", CLUSTER_STATUSES.values(), ids=CLUSTER_STATUSES.keys())
def test_every_cdncluster_status_the_operator_writes_passes_the_crd_schema_whole(status: StatusModel) -> None:
    wire = status_patch(status)
    assert wire, "something to write"
    assert problems(wire, status_schema("cdnclusters")) == []


@pytest.mark.parametrize("status", PURGE_STATUSES.values(), ids=PURGE_STATUSES.keys())
def test_every_purgerequest_status_the_operator_writes_passes_the_crd_schema_whole(status: StatusModel) -> None:
    wire = status_patch(status)
    assert wire, "something to write"
    assert problems(wire, status_schema("purgerequests")) == []


def test_a_misspelt_status_key_is_caught_rather_than_pruned() -> None:
    """The check itself: what the API server would drop without a word is reported."""
    hand_typed = {"phase": "Complete", "ackedEdges": ["e1"], "durationMs": "12"}
    assert problems(hand_typed, status_schema("purgerequests")) == [
        "status.ackedEdges: pruned (not in the schema)",
        "status.durationMs: str where the schema says integer",
    ]


def test_an_origin_bound_fleet_says_so_in_a_condition() -> None:
    bound = {c.type: c for c in CLUSTER_STATUSES["autoscaler-origin-bound"].conditions}["OriginBound"]
    assert COLD.bottleneck == "origin" and bound.status == "True"
    assert "2194 ms" in bound.message


def test_status_patch_writes_only_what_the_writer_set() -> None:
    """A partial status (the autoscaler's) must not reset fields another writer owns (the reconcile's)."""
    assert set(status_patch(CLUSTER_STATUSES["autoscaler-holding"])) == {"conditions"}
