"""The balancer learns its edges from a Service's EndpointSlices on the real API server."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import pytest
from edgefleet_balancer.server import Balancer, BalancerSettings

from edgefleet.testing.kube_testenv import KubeTestEnv

DEADLINE = 30.0


async def eventually(probe: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not probe():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def endpoint_slice(service: str, endpoints: list[tuple[str, str, bool]]) -> dict[str, object]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": f"{service}-abc", "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": [ip], "conditions": {"ready": ready}, "targetRef": {"kind": "Pod", "name": pod}}
            for pod, ip, ready in endpoints
        ],
    }


async def test_endpoint_changes_change_the_balancers_membership(kube_env: KubeTestEnv, namespace: str) -> None:
    kube_env.kubectl("create", "serviceaccount", "balancer", "-n", namespace)
    kube_env.kubectl("create", "role", "read-endpoints", "-n", namespace, "--verb=get,list,watch",
                     "--resource=endpointslices.discovery.k8s.io")  # fmt: skip
    kube_env.kubectl("create", "rolebinding", "balancer", "-n", namespace, "--role=read-endpoints",
                     f"--serviceaccount={namespace}:balancer")  # fmt: skip
    kubeconfig = kube_env.service_account_kubeconfig(namespace, "balancer")
    slice_ = endpoint_slice("shop-edge", [("shop-edge-a", "10.1.0.1", True), ("shop-edge-b", "10.1.0.2", True)])
    kube_env.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(slice_))

    balancer = Balancer(
        BalancerSettings(
            listen=("127.0.0.1", 0), admin_listen=("127.0.0.1", 0), admin_token="t",
            kubernetes_service=(namespace, "shop-edge"), kubeconfig=str(kubeconfig),
            active_probes=False,  # the endpoints are not on loopback: nothing may be sent to them
        )
    )  # fmt: skip
    await balancer.start()
    try:
        await eventually(
            lambda: set(balancer.membership.members) == {"shop-edge-a", "shop-edge-b"}, "the first two edges"
        )
        assert balancer.membership.members["shop-edge-a"].url == "http://10.1.0.1:8080"
        assert balancer.membership.members["shop-edge-a"].admin_url == "http://10.1.0.1:9090"

        grown = endpoint_slice(
            "shop-edge",
            [("shop-edge-a", "10.1.0.1", True), ("shop-edge-b", "10.1.0.2", False), ("shop-edge-c", "10.1.0.3", True)],
        )
        kube_env.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(grown))
        await eventually(
            lambda: set(balancer.membership.members) == {"shop-edge-a", "shop-edge-c"},
            "a new ready edge to join and an unready one to leave",
        )
        kube_env.kubectl("delete", "endpointslice", "shop-edge-abc", "-n", namespace)
        await eventually(lambda: not balancer.membership.members, "all edges to leave")
    finally:
        await balancer.stop()
