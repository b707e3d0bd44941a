"""The local runtime's plan: what ``edgefleet up`` starts for a CdnCluster, without starting it."""

from __future__ import annotations

from pathlib import Path

import yaml

from edgefleet.api import CdnCluster
from edgefleet.runtime.plan import edge_command, make_plan

ROOT = Path(__file__).resolve().parents[2]


def local_cluster(**edge: object) -> CdnCluster:
    body = yaml.safe_load((ROOT / "examples/cdncluster-local.yaml").read_text())
    body["spec"].setdefault("edge", {}).update(edge)
    return CdnCluster.model_validate(body)


def test_local_edges_run_workers_only_when_the_spec_asks(tmp_path: Path) -> None:
    default = edge_command(make_plan(local_cluster(), tmp_path, 18080), 0, "redis://127.0.0.1:1")
    assert not any(arg.startswith("--workers") for arg in default)
    two = edge_command(make_plan(local_cluster(workers=2), tmp_path, 18080), 0, "redis://127.0.0.1:1")
    assert "--workers=2" in two
