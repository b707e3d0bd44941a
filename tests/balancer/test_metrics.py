"""The balancer's metrics are HAProxy's own exporter (plus the agent's few), behind the admin token."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.balancer.harness import Setup

CHART = Path(__file__).resolve().parents[2] / "helm" / "edgefleet"
NAME_RE = re.compile(r"\b(?:haproxy|edgefleet_balancer)_[a-z0-9_]+")


def chart_balancer_metrics() -> set[str]:
    used: set[str] = set()
    for path in sorted((CHART / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                used |= set(NAME_RE.findall(target["expr"]))
    used |= set(NAME_RE.findall((CHART / "templates" / "prometheusrule.yaml").read_text()))
    return used


async def test_every_balancer_metric_the_chart_uses_is_exported(setup: Setup) -> None:
    await setup.get("/assets/a.jpg")
    async with setup.session.get(setup.admin + "/metrics", headers=setup.auth) as response:
        assert response.status == 200
        text = await response.text()
    exported = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    used = chart_balancer_metrics()
    assert any(name.startswith("haproxy_") for name in used)
    assert used <= exported, f"the chart queries metrics nobody exports: {sorted(used - exported)}"
    assert 'haproxy_backend_http_responses_total{proxy="edges",code="2xx"} 1' in text


async def test_metrics_need_the_admin_token(setup: Setup) -> None:
    async with setup.session.get(setup.admin + "/metrics") as response:
        assert response.status == 401


async def test_slots_in_maintenance_are_left_out_of_the_metrics(setup: Setup) -> None:
    async with setup.session.get(setup.admin + "/metrics", headers=setup.auth) as response:
        text = await response.text()
    slots = set(re.findall(r'server="(slot\d+)"', text))
    assert slots == {edge["slot"] for edge in (await setup.view()).values()}
