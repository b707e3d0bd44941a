"""The one-node cluster with a real kubelet (edgefleet/testing/node_cluster.py), with the built image.

The session builds the image the way `make images` does (Debian base, host-built wheels, no registry),
starts the cluster with that image imported into its containerd, and checks on the way out that stopping
it left nothing behind on the host.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefleet.testing.kube_testenv import KubeTestEnvError, find_bin_dir
from edgefleet.testing.node_cluster import NodeCluster, leftovers
from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]


def image_name() -> str:
    version = next(
        line.split('"')[1] for line in (ROOT / "pyproject.toml").read_text().splitlines() if line.startswith("version")
    )
    return f"ghcr.io/edgefleet/edgefleet:{version}"


@pytest.fixture(scope="session")
def built_image() -> str:
    """`make images`: the image every fleet component runs from, in the local Docker engine."""
    require(sys.platform == "linux" and os.geteuid() == 0, "root on Linux (the one-node cluster runs containers)")
    require(shutil.which("docker") is not None, "docker (hack/system-deps.sh installs docker.io)")
    result = subprocess.run(["make", "-s", "images"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"make images failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return image_name()


@pytest.fixture(scope="session")
def node_cluster(built_image: str) -> Iterator[NodeCluster]:
    try:
        cluster = NodeCluster(bin_dir=find_bin_dir(), images=(built_image,))
        cluster.start()
    except KubeTestEnvError as exc:
        require(False, f"the one-node cluster ({exc})")
    yield cluster
    cluster.stop()
    left = leftovers()
    assert not left, "stopping the cluster left things behind:\n" + "\n".join(left)
