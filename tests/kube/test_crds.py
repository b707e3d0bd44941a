"""The CRDs on a real API server: install, printer columns, scale subresource, and rejection of bad specs
with a message that names the field — the same specs the pydantic models reject."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from edgefleet.api import CdnCluster, PurgeRequest
from edgefleet.testing.kube_testenv import KubeTestEnv

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = yaml.safe_load((ROOT / "examples" / "cdncluster.yaml").read_text())
PURGE = yaml.safe_load((ROOT / "examples" / "purgerequest.yaml").read_text())


def apply(env: KubeTestEnv, namespace: str, manifest: dict[str, Any]) -> tuple[int, str]:
    result = env.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest), check=False)
    return result.returncode, result.stdout + result.stderr


def cluster_with(path: str, value: Any) -> dict[str, Any]:
    """The example CdnCluster with ``value`` at dotted ``path`` (under spec)."""
    manifest = copy.deepcopy(EXAMPLE)
    node = manifest["spec"]
    *parents, leaf = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return manifest


def purge_with(**spec: Any) -> dict[str, Any]:
    manifest = copy.deepcopy(PURGE)
    manifest["spec"] = spec
    return manifest


INVALID = [
    ("bad-quantity", cluster_with("edge.cache.memory", "12XB"), "spec.edge.cache.memory"),
    ("min-above-max", cluster_with("edge.replicas", {"min": 5, "max": 2}), "spec.edge.replicas.min"),
    (
        "two-storage-kinds",
        cluster_with("origin.storage.filesystem", {"hostPath": "/data"}),
        "spec.origin.storage",
    ),
    ("no-purge-target", purge_with(cluster="shop"), "spec"),
    ("unknown-field", cluster_with("edge.cach", {"memory": "1Gi"}), "spec.edge.cach"),
    ("negative-ttl-after-finished", purge_with(cluster="shop", all=True, ttlSecondsAfterFinished=-1),
     "spec.ttlSecondsAfterFinished"),
    ("negative-default-ttl", cluster_with("origin.defaultTtl", "-5s"), "spec.origin.defaultTtl"),
    ("bad-s3-url", cluster_with("origin.storage.s3.endpoint", "ftp://minio"), "spec.origin.storage.s3.endpoint"),
    ("bad-prometheus-url", cluster_with("autoscaling.prometheusUrl", "not a url"), "spec.autoscaling.prometheusUrl"),
    ("wrong-type", cluster_with("origin.replicas", "three"), "spec.origin.replicas"),
    (
        "password-in-redis-url",
        cluster_with("purgeBus.external", {"url": "redis://:hunter2@redis:6379/0"}),
        "spec.purgeBus.external.url",
    ),
    ("desired-above-max", cluster_with("edge.replicas", {"min": 2, "max": 4, "desired": 9}),
     "spec.edge.replicas.desired"),
    ("no-workers", cluster_with("edge.workers", 0), "spec.edge.workers"),
    ("unknown-cache-policy", cluster_with("edge.cache.policy", "arc"), "spec.edge.cache.policy"),
]  # fmt: skip


def test_crds_reach_established_and_examples_apply(crds_installed: KubeTestEnv, namespace: str) -> None:
    result = crds_installed.kubectl("apply", "-n", namespace, "-f", str(ROOT / "examples"))
    assert "cdncluster.cdn.edgefleet.io/shop created" in result.stdout
    assert "purgerequest.cdn.edgefleet.io/shop-sku-123 created" in result.stdout


def test_kubectl_get_prints_the_printer_columns(crds_installed: KubeTestEnv, namespace: str) -> None:
    crds_installed.kubectl("apply", "-n", namespace, "-f", str(ROOT / "examples"))
    cdn = crds_installed.kubectl("get", "cdn", "-n", namespace).stdout.splitlines()[0].split()
    assert cdn == ["NAME", "READY", "EDGES", "HIT", "RATIO", "P95", "MS", "AGE"]
    purge = crds_installed.kubectl("get", "purge", "-n", namespace).stdout.splitlines()[0].split()
    assert purge == ["NAME", "CLUSTER", "PHASE", "ACKED", "DURATION", "MS", "AGE"]
    everything = crds_installed.kubectl("get", "edgefleet", "-n", namespace).stdout
    assert "cdncluster.cdn.edgefleet.io/shop" in everything, "both kinds are in the edgefleet category"


def test_kubectl_scale_sets_the_desired_edge_replicas(crds_installed: KubeTestEnv, namespace: str) -> None:
    crds_installed.kubectl("apply", "-n", namespace, "-f", str(ROOT / "examples" / "cdncluster.yaml"))
    crds_installed.kubectl("scale", "cdn", "shop", "-n", namespace, "--replicas=5")
    desired = crds_installed.kubectl(
        "get", "cdn", "shop", "-n", namespace, "-o", "jsonpath={.spec.edge.replicas.desired}"
    ).stdout
    assert desired == "5"


def test_api_server_defaults_match_the_model_defaults(crds_installed: KubeTestEnv, namespace: str) -> None:
    minimal = {
        "apiVersion": "cdn.edgefleet.io/v1alpha1",
        "kind": "CdnCluster",
        "metadata": {"name": "tiny"},
        "spec": {"origin": {"storage": {"filesystem": {"hostPath": "/srv/assets"}}}},
    }
    crds_installed.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(minimal))
    stored = json.loads(crds_installed.kubectl("get", "cdn", "tiny", "-n", namespace, "-o", "json").stdout)
    assert stored["spec"] == CdnCluster.model_validate(minimal).spec.to_wire()


@pytest.mark.parametrize(("manifest", "field"), [(m, f) for _, m, f in INVALID], ids=[i for i, _, _ in INVALID])
def test_invalid_spec_is_rejected_by_the_api_server_naming_the_field(
    crds_installed: KubeTestEnv, namespace: str, manifest: dict[str, Any], field: str
) -> None:
    code, output = apply(crds_installed, namespace, manifest)
    assert code != 0, f"the API server accepted it:\n{output}"
    assert field in output, output


@pytest.mark.parametrize(("manifest", "field"), [(m, f) for _, m, f in INVALID], ids=[i for i, _, _ in INVALID])
def test_invalid_spec_is_rejected_by_the_models_too(manifest: dict[str, Any], field: str) -> None:
    model = PurgeRequest if manifest["kind"] == "PurgeRequest" else CdnCluster
    with pytest.raises(ValidationError):
        model.model_validate(manifest)


def test_purge_request_spec_cannot_change(crds_installed: KubeTestEnv, namespace: str) -> None:
    code, output = apply(crds_installed, namespace, PURGE)
    assert code == 0, output
    changed = copy.deepcopy(PURGE)
    changed["spec"]["tags"] = ["sku-999"]
    code, output = apply(crds_installed, namespace, changed)
    assert code != 0
    assert "cannot be changed" in output and "spec" in output


@pytest.mark.parametrize("path", ["cdncluster.yaml", "cdncluster-local.yaml", "cdncluster-kind.yaml",
                                  "purgerequest.yaml"])  # fmt: skip
def test_examples_round_trip_through_the_models(path: str) -> None:
    document = yaml.safe_load((ROOT / "examples" / path).read_text())
    model = PurgeRequest if document["kind"] == "PurgeRequest" else CdnCluster
    parsed = model.model_validate(document)
    again = model.model_validate({**document, "spec": parsed.spec.to_wire()})
    assert again.spec == parsed.spec
    for key, value in document["spec"].items():
        assert parsed.spec.to_wire()[key] == value or isinstance(value, dict), key
