"""The real Kubernetes control plane for tests (see edgefleet/testing/kube_testenv.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefleet.testing.kube_testenv import KubeTestEnv, KubeTestEnvError
from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
CRD_NAMES = ("cdnclusters.cdn.edgefleet.io", "purgerequests.cdn.edgefleet.io")


@pytest.fixture(scope="session")
def kube_env() -> Iterator[KubeTestEnv]:
    """One control plane for the session: etcd, kube-apiserver, controller-manager, scheduler, kwok."""
    env = KubeTestEnv()
    try:
        env.start()
    except KubeTestEnvError as exc:
        require(False, f"the Kubernetes test control plane ({exc})")
    yield env
    env.stop()


@pytest.fixture(scope="session")
def crds_installed(kube_env: KubeTestEnv) -> KubeTestEnv:
    """The generated CRDs, applied and Established."""
    kube_env.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kube_env.kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{n}" for n in CRD_NAMES))
    return kube_env


@pytest.fixture
def namespace(kube_env: KubeTestEnv) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (not waited for)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    kube_env.kubectl("create", "namespace", name)
    yield name
    kube_env.kubectl("delete", "namespace", name, "--wait=false", check=False)
