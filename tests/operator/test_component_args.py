"""Parity: ``edgefleet render`` (the operator) and ``edgefleet up`` (one machine) give every component the
same spec-derived arguments; only where things are (addresses, directories, URLs of the bus) may differ."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from edgefleet_operator.render import render

from edgefleet.api import CdnCluster
from edgefleet.runtime.plan import balancer_command, edge_command, edgefleet_command, make_plan, origin_command

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("cdncluster*.yaml"))

# Where things are, not what the spec asks for: written out here rather than imported, so that the test
# does not trust the module it checks.
PLACEMENT = {
    "--listen", "--admin-listen", "--storage", "--redis", "--cluster", "--variant-cache-dir", "--origin",
    "--cache-dir", "--name", "--log-format", "--kubernetes-service", "--edge-port", "--edge-admin-port",
    "--haproxy", "--haproxy-threads",  # the image's HAProxy and the pod's CPUs; locally, the one on PATH
}  # fmt: skip


def _normalised(args: list[str]) -> list[str]:
    """``--flag value`` and ``--flag=value`` alike as ``--flag=value``, placement flags left out."""
    joined: list[str] = []
    for arg in args:
        if joined and joined[-1].startswith("--") and "=" not in joined[-1] and not arg.startswith("--"):
            joined[-1] = f"{joined[-1]}={arg}"
        else:
            joined.append(arg)
    return [arg for arg in joined if arg.split("=", 1)[0] not in PLACEMENT]


def _normalised_keeping_all(args: list[str]) -> list[str]:
    return [f"{a}={b}" if a == "--storage" else a for a, b in zip(args, [*args[1:], ""], strict=True)]


def _variants() -> list[Any]:
    cases = []
    for path in EXAMPLES:
        body = yaml.safe_load(path.read_text())
        cases.append(pytest.param(body, id=path.stem))
        tuned = copy.deepcopy(body)
        edge = tuned["spec"].setdefault("edge", {})
        edge.setdefault("cache", {}).update({"grace": "10m", "policy": "lru", "memory": "64Mi", "disk": "0"})
        edge["workers"] = 2
        tuned["spec"]["origin"]["defaultTtl"] = "5m"
        tuned["spec"]["origin"]["images"] = {"widths": [100, 200], "formats": ["webp"], "roundWidths": "reject"}
        tuned["spec"]["balancer"]["hashing"] = {"key": "path", "loadFactor": 1.5}
        cases.append(pytest.param(tuned, id=f"{path.stem}-tuned"))
    return cases


def _rendered_args(cluster: CdnCluster) -> dict[str, list[str]]:
    args = {}
    for manifest in render(cluster):
        if manifest["kind"] == "Deployment":
            container = manifest["spec"]["template"]["spec"]["containers"][0]
            if container.get("command") == ["edgefleet"]:
                args[container["args"][0]] = container["args"]
    return args


@pytest.mark.parametrize("body", _variants())
def test_render_and_local_runtime_give_components_the_same_spec_arguments(body: Any, tmp_path: Path) -> None:
    cluster = CdnCluster.model_validate(body)
    rendered = _rendered_args(cluster)
    plan = make_plan(cluster, tmp_path, 18080)
    skip = len(edgefleet_command())
    local = {
        "origin": origin_command(plan, "redis://127.0.0.1:1")[skip:],
        "edge": edge_command(plan, 0, "redis://127.0.0.1:1")[skip:],
        "balancer": balancer_command(plan, "redis://127.0.0.1:1")[skip:],
    }
    # The console (issue #18) arrived beside this builder and still renders its own arguments: it has no spec
    # flags beyond where things are, and its tokens travel by environment. It is compared in tests/console.
    rendered.pop("console", None)
    assert set(rendered) == set(local)
    for component in local:
        assert _normalised(local[component]) == _normalised(rendered[component]), component


@pytest.mark.parametrize("region", [None, "eu-west-1"], ids=["no-region", "region"])
def test_s3_region_reaches_the_origin_both_ways(region: str | None, tmp_path: Path) -> None:
    body = yaml.safe_load((ROOT / "examples" / "cdncluster.yaml").read_text())
    body["spec"]["origin"]["storage"]["s3"]["region"] = region
    cluster = CdnCluster.model_validate(body)
    storage_rendered = next(a for a in _rendered_args(cluster)["origin"] if a.startswith("--storage="))
    local = origin_command(make_plan(cluster, tmp_path, 18080), "redis://127.0.0.1:1")
    storage_local = next(a for a in _normalised_keeping_all(local) if a.startswith("--storage="))
    assert storage_local == storage_rendered
    assert ("region=eu-west-1" in storage_local) == (region is not None)
