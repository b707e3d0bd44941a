"""The balancer learns its edges from a Service's EndpointSlices on the real API server and puts them in HAProxy."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Awaitable, Callable

import pytest
from edgefleet_balancer.server import Balancer, BalancerSettings

from edgefleet.embedded_redis import free_port
from edgefleet.testing.kube_testenv import KubeTestEnv
from tests.conftest import require

DEADLINE = 30.0


async def eventually(probe: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not await probe():
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


async def test_endpoint_changes_change_haproxys_servers(kube_env: KubeTestEnv, namespace: str) -> None:
    require(shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin:/usr/bin") is not None, "HAProxy (apt haproxy)")
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
            listen=("127.0.0.1", free_port()), admin_listen=("127.0.0.1", 0), admin_token="t",
            kubernetes_service=(namespace, "shop-edge"), kubeconfig=str(kubeconfig),
            health_checks=False,  # the endpoints are not on loopback: nothing may be sent to them
        )
    )  # fmt: skip
    await balancer.start()

    async def servers() -> dict[str, str]:
        """Edge name -> the address HAProxy has in its slot, for slots in service."""
        return {e["name"]: e["status"] for e in await balancer.edge_view() if e["status"] != "MAINT"}

    async def addresses() -> dict[str, str]:
        stats = {s.slot: s.address for s in await balancer.api.server_stats("edges") if s.status != "MAINT"}
        return {e["name"]: stats.get(e["slot"], "") for e in await balancer.edge_view()}

    try:

        async def first_two() -> bool:
            return set(await servers()) == {"shop-edge-a", "shop-edge-b"}

        await eventually(first_two, "HAProxy to have the first two edges")
        assert (await addresses())["shop-edge-a"] == "10.1.0.1:8080"
        assert balancer.members["shop-edge-a"] == ("shop-edge-a", "http://10.1.0.1:8080", "http://10.1.0.1:9090")

        grown = endpoint_slice(
            "shop-edge",
            [("shop-edge-a", "10.1.0.1", True), ("shop-edge-b", "10.1.0.2", False), ("shop-edge-c", "10.1.0.3", True)],
        )
        kube_env.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(grown))

        async def changed() -> bool:
            return set(await servers()) == {"shop-edge-a", "shop-edge-c"}

        await eventually(changed, "a new ready edge to join and an unready one to leave")
        assert balancer.metrics.registry.get_sample_value("edgefleet_balancer_panic_routing") == 0.0

        # A Redis outage: every edge reports not ready (it cannot hear of purges). Routing to ready edges only would
        # answer every shopper 503; the live ones keep the traffic, a terminating one never does.
        unready = [(f"shop-edge-{pod}", f"10.1.0.{i}", False) for i, pod in enumerate("abc", 1)]
        none_ready = endpoint_slice("shop-edge", unready)
        none_ready["endpoints"][1]["conditions"]["terminating"] = True  # type: ignore[index]
        kube_env.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(none_ready))

        async def panic_routing() -> bool:
            panic = balancer.metrics.registry.get_sample_value("edgefleet_balancer_panic_routing") == 1.0
            return panic and set(await servers()) == {"shop-edge-a", "shop-edge-c"}

        await eventually(panic_routing, "the live not-ready edges to keep the traffic when none is ready")
        one_ready = endpoint_slice("shop-edge", [("shop-edge-a", "10.1.0.1", True), ("shop-edge-c", "10.1.0.3", False)])
        kube_env.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(one_ready))

        async def panic_over() -> bool:
            panic = balancer.metrics.registry.get_sample_value("edgefleet_balancer_panic_routing") == 1.0
            return not panic and set(await servers()) == {"shop-edge-a"}

        await eventually(panic_over, "only the ready edge once one is ready again")
        kube_env.kubectl("delete", "endpointslice", "shop-edge-abc", "-n", namespace)

        async def empty() -> bool:
            stats = await balancer.api.server_stats("edges")
            return not await servers() and all(s.status == "MAINT" for s in stats)

        await eventually(empty, "all edges to leave HAProxy")
    finally:
        await balancer.stop()
