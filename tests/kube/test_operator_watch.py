"""Owned Deployments and Services are watched: with the drift timer out of the picture (one hour), a hand-edited
Deployment and a deleted Service are put back from their own watch events, and status follows the rollouts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from edgefleet.testing.kube_testenv import KubeTestEnv
from tests.kube.test_operator import (
    RULES,
    Operator,
    create_minio_secret,
    eventually,
    get,
    ready_fleet,
    shop,
)


class SlowTimerOperator(Operator):
    """The chart-RBAC operator, with a drift timer too slow to matter within a test."""

    def start(self) -> None:
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edgefleet.cli", "operator", "--all-namespaces", "--drift-interval", "1h",
             "--metrics-listen", f"127.0.0.1:{self.metrics_port}", "--bus-url-override", self.bus_url,
             "--image", "example.invalid/edgefleet:test"],
            stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
        )  # fmt: skip
        handle.close()


@pytest.fixture(scope="module")
def operator(
    crds_installed: KubeTestEnv, redis_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    import yaml

    env = crds_installed
    env.kubectl("create", "namespace", "edgefleet-system", check=False)
    env.kubectl("create", "serviceaccount", "edgefleet-operator", "-n", "edgefleet-system", check=False)
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "edgefleet-operator-test"}, "rules": yaml.safe_load(RULES.read_text())}  # fmt: skip
    env.kubectl("apply", "-f", "-", input=json.dumps(role))
    env.kubectl("create", "clusterrolebinding", "edgefleet-operator-test", "--clusterrole=edgefleet-operator-test",
                "--serviceaccount=edgefleet-system:edgefleet-operator", check=False)  # fmt: skip
    kubeconfig = env.service_account_kubeconfig("edgefleet-system", "edgefleet-operator")
    op = SlowTimerOperator(env, kubeconfig, redis_server.url, tmp_path_factory.mktemp("watch") / "operator.log")
    op.start()
    yield op
    op.stop()


def test_owned_object_events_make_the_fleet_ready_and_undo_hand_edits_without_the_timer(
    operator: Operator, kube_env: KubeTestEnv, namespace: str
) -> None:
    create_minio_secret(kube_env, namespace)
    started = time.monotonic()
    ready_fleet(kube_env, namespace, shop(namespace), operator)
    print(f"apply -> Ready: {time.monotonic() - started:.1f}s")
    kube_env.kubectl("scale", "deployment", "shop-edge", "-n", namespace, "--replicas=7")
    kube_env.kubectl("delete", "service", "shop-origin", "-n", namespace)
    try:
        eventually(lambda: get(kube_env, "deployment", "shop-edge", namespace)["spec"]["replicas"] == 2,  # type: ignore[index]
                   "edge replicas to be restored", timeout=30)  # fmt: skip
        eventually(lambda: get(kube_env, "service", "shop-origin", namespace), "the origin Service", timeout=30)
    except pytest.fail.Exception:
        print(operator.tail())
        raise
