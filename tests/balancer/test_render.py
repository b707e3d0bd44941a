"""The operator's balancer Deployment: the agent runs Debian's HAProxy, with threads to match its CPU limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from edgefleet_operator.render import RenderOptions, render

from edgefleet.api import CdnCluster

ROOT = Path(__file__).resolve().parents[2]


def balancer_args(resources: dict[str, Any] | None = None) -> list[str]:
    body: dict[str, Any] = yaml.safe_load((ROOT / "examples/cdncluster.yaml").read_text())
    body["metadata"].update(namespace="shop", uid="0c9f5a58-6d1c-4b5e-9d43-7a1b2c3d4e5f", generation=1)
    if resources is not None:
        body["spec"].setdefault("balancer", {})["resources"] = resources
    for manifest in render(CdnCluster.model_validate(body), RenderOptions()):
        if manifest["kind"] == "Deployment" and manifest["metadata"]["name"].endswith("-balancer"):
            container = manifest["spec"]["template"]["spec"]["containers"][0]
            return list(container["args"])
    raise AssertionError("no balancer Deployment rendered")


def test_balancer_runs_debians_haproxy() -> None:
    assert "--haproxy=/usr/sbin/haproxy" in balancer_args()


@pytest.mark.parametrize(
    ("cpu", "threads"), [("500m", 1), ("1", 1), ("1500m", 2), ("4", 4)], ids=["half", "one", "one-and-a-half", "four"]
)
def test_haproxy_threads_follow_the_cpu_limit(cpu: str, threads: int) -> None:
    assert f"--haproxy-threads={threads}" in balancer_args({"limits": {"cpu": cpu}})


def test_without_a_cpu_limit_haproxy_chooses_its_threads() -> None:
    assert not any(arg.startswith("--haproxy-threads") for arg in balancer_args())
