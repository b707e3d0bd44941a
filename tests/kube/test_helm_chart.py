"""The Helm chart against the real control plane: lint, render in every mode, install, upgrade, uninstall."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from edgefleet.testing.kube_testenv import KubeTestEnv

CHART = Path(__file__).resolve().parents[2] / "helm" / "edgefleet"

# The Prometheus Operator's CRDs are not part of this control plane; these stand-ins accept any spec,
# so the dry-run checks our objects' kinds, names and metadata, not the operator's schemas.
MONITORING_CRDS = [
    ("servicemonitors", "ServiceMonitor"),
    ("prometheusrules", "PrometheusRule"),
]


def stub_crd(plural: str, kind: str) -> dict[str, object]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
            "versions": [{"name": "v1", "served": True, "storage": True,
                          "schema": {"openAPIV3Schema": {"type": "object",
                                                         "x-kubernetes-preserve-unknown-fields": True}}}],
        },
    }  # fmt: skip


@pytest.fixture(scope="module")
def monitoring_crds(kube_env: KubeTestEnv) -> None:
    for plural, kind in MONITORING_CRDS:
        kube_env.kubectl("apply", "-f", "-", input=json.dumps(stub_crd(plural, kind)))
    kube_env.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                     *(f"crd/{p}.monitoring.coreos.com" for p, _ in MONITORING_CRDS))  # fmt: skip


def test_chart_lints_clean(kube_env: KubeTestEnv) -> None:
    result = kube_env.helm("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in result.stdout
    # The one remark left is Helm's icon recommendation: there is no project icon to point at yet.
    remarks = [line for line in result.stdout.splitlines() if line.startswith("[")]
    assert remarks == ["[INFO] Chart.yaml: icon is recommended"], remarks


VARIANTS = {
    "defaults": [],
    "every-feature": ["--set", "serviceMonitor.enabled=true", "--set", "prometheusRule.enabled=true",
                      "--set", "dashboards.enabled=true", "--set", "networkPolicy.enabled=true"],
    "namespace-scoped": ["--set", "operator.watchNamespaces={shop-a,shop-b}", "--set", "networkPolicy.enabled=true"],
}  # fmt: skip


@pytest.mark.parametrize("variant", sorted(VARIANTS), ids=sorted(VARIANTS))
def test_rendered_chart_is_accepted_by_the_api_server(
    crds_installed: KubeTestEnv, monitoring_crds: None, namespace: str, variant: str
) -> None:
    for extra in ("shop-a", "shop-b"):
        crds_installed.kubectl("create", "namespace", extra, check=False)
    rendered = crds_installed.helm("template", "edgefleet", str(CHART), "-n", namespace, *VARIANTS[variant]).stdout
    kinds = {line.split(":", 1)[1].strip() for line in rendered.splitlines() if line.startswith("kind:")}
    assert "Deployment" in kinds
    if variant == "namespace-scoped":
        assert "ClusterRole" not in kinds and "Role" in kinds
    if variant == "every-feature":
        assert {"ServiceMonitor", "PrometheusRule", "ConfigMap", "NetworkPolicy"} <= kinds
    result = crds_installed.kubectl("apply", "--dry-run=server", "-f", "-", input=rendered,
                                    check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_helm_install_upgrade_and_uninstall(crds_installed: KubeTestEnv, namespace: str) -> None:
    release = f"ef-{uuid.uuid4().hex[:6]}"
    crds_installed.helm("install", release, str(CHART), "-n", namespace, "--wait", "--timeout", "120s")
    deployment = f"{release}-edgefleet"

    def ready_replicas() -> int:
        out = crds_installed.kubectl("get", "deployment", deployment, "-n", namespace,
                                     "-o", "jsonpath={.status.readyReplicas}").stdout  # fmt: skip
        return int(out or 0)

    deadline = time.monotonic() + 60
    while ready_replicas() < 1:
        assert time.monotonic() < deadline, "the operator pod never became Ready"
        time.sleep(0.2)
    crds_installed.helm("upgrade", release, str(CHART), "-n", namespace, "--set", "operator.logFormat=text", "--wait")
    args = json.loads(crds_installed.kubectl("get", "deployment", deployment, "-n", namespace, "-o", "json").stdout)
    assert "--log-format=text" in args["spec"]["template"]["spec"]["containers"][0]["args"]
    history = crds_installed.helm("history", release, "-n", namespace, "-o", "json").stdout
    assert [entry["revision"] for entry in json.loads(history)] == [1, 2]
    crds_installed.helm("uninstall", release, "-n", namespace, "--wait")
    gone = crds_installed.kubectl("get", "deployment", deployment, "-n", namespace, check=False)
    assert gone.returncode != 0
    crds = crds_installed.kubectl("get", "crd", "cdnclusters.cdn.edgefleet.io", check=False)
    assert crds.returncode == 0, "CRDs are kept on uninstall, as Helm does"
