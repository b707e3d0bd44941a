"""The Helm chart's static parts: CRDs identical to the generated ones, dashboards and alerts that
query metrics the components really export, and alert rules Prometheus can load."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import kube_tool, require

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "edgefleet"
METRIC_RE = re.compile(r"\bedgefleet_[a-z0-9_]+")
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


def exported_metrics() -> set[str]:
    """Every metric name the components' real registries export (built the way each component builds it)."""
    import kopf
    from edgefleet_balancer.server import BalancerMetrics
    from edgefleet_edge.metrics import EdgeMetrics
    from edgefleet_edge.server import EdgeSettings
    from edgefleet_edge.store import Store
    from edgefleet_edge.supervisor import Supervisor
    from edgefleet_operator import autoscaling
    from edgefleet_operator.handlers import OperatorConfig, Runtime
    from edgefleet_origin.metrics import OriginMetrics

    operator = Runtime(OperatorConfig(), applier=None, core=None, custom=None)  # type: ignore[arg-type]
    autoscaling.register(kopf.OperatorRegistry(), operator)
    registries = [
        EdgeMetrics(Store(1024, 0, None)).registry,
        Supervisor(EdgeSettings(("127.0.0.1", 0), ("127.0.0.1", 0), "http://o", 1024, 0, None, "e", "t"), 2).registry,
        BalancerMetrics().registry,
        OriginMetrics().registry,
        operator.registry,
    ]
    names: set[str] = set()
    for registry in registries:
        for family in registry.collect():
            names.add(family.name + "_total" if family.type == "counter" else family.name)
    return names


EXPORTED = exported_metrics()


def base_metric(name: str) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name.removesuffix(suffix) in EXPORTED:
            return name.removesuffix(suffix)
    return name


def dashboard_expressions() -> list[str]:
    exprs = []
    for path in sorted((CHART / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            exprs += [target["expr"] for target in panel.get("targets", [])]
    return exprs


def alert_expressions() -> list[str]:
    template = (CHART / "templates" / "prometheusrule.yaml").read_text()
    return re.findall(r"expr: \|?\n?((?:.|\n)*?)\n\s+(?:for|labels):", template)


def test_chart_crds_are_the_generated_crds() -> None:
    generated = sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))
    assert sorted(p.name for p in (CHART / "crds").glob("*.yaml")) == generated
    for name in generated:
        assert (CHART / "crds" / name).read_text() == (ROOT / "crds" / name).read_text(), (
            f"helm/edgefleet/crds/{name} is stale: run `make crds`"
        )


def test_dashboards_are_grafana_dashboards() -> None:
    for path in sorted((CHART / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 30
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), "panel ids must be unique"
        for panel in dashboard["panels"]:
            assert panel["targets"], f"panel {panel['title']!r} has no query"


@pytest.mark.parametrize("source", ["dashboards", "alerts"], ids=["dashboard-queries", "alert-expressions"])
def test_queries_name_only_metrics_the_components_export(source: str) -> None:
    exprs = dashboard_expressions() if source == "dashboards" else alert_expressions()
    assert exprs
    used = {base_metric(name) for expr in exprs for name in METRIC_RE.findall(expr)}
    assert used, "queries should use edgefleet metrics"
    assert used <= EXPORTED, f"unknown metrics: {sorted(used - EXPORTED)}"


def test_alert_rules_load_in_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    require(promtool is not None, "promtool (Debian package 'prometheus')")
    assert promtool is not None
    helm = kube_tool("helm")
    require(helm is not None, "helm from the test control plane (hack/kube-testenv/build.sh)")
    assert helm is not None
    out = subprocess.run(
        [
            helm,
            "template",
            "t",
            str(CHART),
            "--set",
            "prometheusRule.enabled=true",
            "--show-only",
            "templates/prometheusrule.yaml",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rendered = yaml.safe_load(out)["spec"]
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(rendered))
    result = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


def test_every_shared_metric_name_is_exported_by_a_component() -> None:
    from edgefleet import metric_names

    declared = {v for k, v in vars(metric_names).items() if k.isupper() and isinstance(v, str)}
    assert declared - EXPORTED == set()
