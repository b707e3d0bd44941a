"""Two writers of a CdnCluster's status, the reconcile and the owned-Deployment events: a reconcile that read the
Deployments before a rollout finished must not replace the Ready status an owned event wrote meanwhile.

The interleaving is made deterministic in-process, against the real API server: the reconcile is held at its
status write, after its reads; meanwhile the Deployments become ready (a ResourceQuota held their pods back until
then) and the owned-Deployment handler writes Ready; then the reconcile is released, and whatever it left in kopf's
``patch.status`` is merged into the status as kopf does after a handler returns (unconditionally)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import kopf
import pytest
from edgefleet_operator.apply import Applier
from edgefleet_operator.context import OperatorConfig, Runtime
from edgefleet_operator.handlers import owned_changed, reconcile_cluster
from edgefleet_operator.writers import ObjectRef, StatusWriter
from kubernetes import client as k8s

from edgefleet.api import GROUP, VERSION
from edgefleet.api.base import StatusModel
from edgefleet.testing.kube_testenv import KubeTestEnv
from tests.kube.test_operator import condition, create_minio_secret, eventually, get, shop

COMPONENTS = ("shop-origin", "shop-edge", "shop-balancer")


class HeldWriter(StatusWriter):
    """The first status write runs ``meanwhile`` before writing: a writer held between its reads and its write."""

    def __init__(self, custom: k8s.CustomObjectsApi, meanwhile: Callable[[], Awaitable[None]]) -> None:
        super().__init__(custom)
        self.meanwhile: Callable[[], Awaitable[None]] | None = meanwhile
        self.held: dict[str, Any] | None = None

    async def write(
        self, ref: ObjectRef, status: StatusModel, patch: kopf.Patch | None = None, *, resource_version: str = ""
    ) -> None:
        if self.meanwhile is not None:
            meanwhile, self.meanwhile = self.meanwhile, None
            self.held = status.model_dump(by_alias=True, mode="json")
            await meanwhile()
        await super().write(ref, status, patch, resource_version=resource_version)


@pytest.fixture
async def runtime(crds_installed: KubeTestEnv, redis_server: Any) -> AsyncIterator[Runtime]:
    """The operator's runtime in this process, as the admin (RBAC is not what this test is about)."""
    api = crds_installed.api_client()
    config = OperatorConfig(image="example.invalid/edgefleet:test", bus_url_override=redis_server.url)
    runtime = Runtime(config, Applier(api), k8s.CoreV1Api(api), k8s.CustomObjectsApi(api))
    yield runtime
    for bus in runtime.buses.values():
        await bus.aclose()
    api.close()


def all_ready(env: KubeTestEnv, namespace: str) -> list[dict[str, Any]] | None:
    deployments = [get(env, "deployment", name, namespace) for name in COMPONENTS]
    if all(d and (d.get("status") or {}).get("readyReplicas") == d["spec"]["replicas"] for d in deployments):
        return [d for d in deployments if d]
    return None


async def reconcile_as_kopf(runtime: Runtime, namespace: str) -> dict[str, Any] | None:
    """The cluster's reconcile handler, as kopf runs it: the body as read, then whatever the handler put in its
    ``patch.status`` merged into the status once it has returned (failed or not), unconditionally. Returns what
    the handler left in ``patch.status``."""
    body = runtime.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "cdnclusters", "shop")
    patch = kopf.Patch()
    try:
        await reconcile_cluster(body=body, patch=patch, memo={"runtime": runtime})
    finally:
        left: dict[str, Any] | None = dict(patch).get("status")
        if left:
            runtime.custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, "cdnclusters", "shop",
                                                                 {"status": left})  # fmt: skip
    return left


def create_held_back_fleet(env: KubeTestEnv, namespace: str) -> None:
    """The example fleet, with its pods held back by a ResourceQuota until ``let_pods_run``."""
    create_minio_secret(env, namespace)
    env.kubectl("create", "quota", "no-pods", "--hard=pods=0", "-n", namespace)
    env.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(shop(namespace)))


async def let_pods_run(env: KubeTestEnv, namespace: str) -> dict[str, Any]:
    """Lift the quota and wait for the rollout to finish; the edge Deployment as it is then."""
    env.kubectl("delete", "quota", "no-pods", "-n", namespace)
    deployments = await asyncio.to_thread(eventually, lambda: all_ready(env, namespace),
                                          "the Deployments to be ready", 90)  # fmt: skip
    return deployments[1]


def ready_of(status: dict[str, Any] | None, kind: str = "Ready") -> str | None:
    return next((c["status"] for c in (status or {}).get("conditions") or [] if c["type"] == kind), None)


async def test_status_written_by_an_owned_event_while_the_reconcile_was_reading_is_not_replaced_by_stale_status(
    runtime: Runtime, kube_env: KubeTestEnv, namespace: str
) -> None:
    create_held_back_fleet(kube_env, namespace)
    memo = {"runtime": runtime}

    async def meanwhile() -> None:
        # The reconcile has applied everything and read the Deployments (no pods allowed yet): the rollout
        # finishes, and the owned-Deployment handler reports it, as it would from the Deployment's watch event.
        edge = await let_pods_run(kube_env, namespace)
        await owned_changed(type="MODIFIED", body=edge, meta=edge["metadata"], memo=memo)
        newer = get(kube_env, "cdn", "shop", namespace)
        assert ready_of((newer or {}).get("status")) == "True", "the owned event wrote Ready"

    writer = HeldWriter(runtime.custom, meanwhile)
    runtime.status = writer
    await reconcile_as_kopf(runtime, namespace)
    assert ready_of(writer.held) == "False", "the reconcile read the Deployments before they were ready"

    final = get(kube_env, "cdn", "shop", namespace)
    assert final is not None
    ready = condition(final, "Ready")
    assert ready is not None and ready["status"] == "True", f"stale status replaced Ready: {ready}"
    assert final["status"]["observedGeneration"] == final["metadata"]["generation"]
    edge_status = final["status"]["edge"]
    assert edge_status["readyReplicas"] == edge_status["desiredReplicas"]


async def test_problem_reported_by_the_reconcile_while_an_owned_event_was_reading_is_not_reported_away(
    runtime: Runtime, kube_env: KubeTestEnv, namespace: str
) -> None:
    create_held_back_fleet(kube_env, namespace)
    memo = {"runtime": runtime}
    await reconcile_as_kopf(runtime, namespace)
    edge = await let_pods_run(kube_env, namespace)

    async def meanwhile() -> None:
        # The owned handler has read the ready Deployments; the reconcile meets a problem and says so.
        kube_env.kubectl("delete", "secret", "shop-minio", "-n", namespace)
        with pytest.raises(kopf.TemporaryError, match="shop-minio"):
            await reconcile_as_kopf(runtime, namespace)
        newer = get(kube_env, "cdn", "shop", namespace)
        assert ready_of((newer or {}).get("status"), "Degraded") == "True", "the reconcile wrote Degraded"

    writer = HeldWriter(runtime.custom, meanwhile)
    runtime.status = writer
    await owned_changed(type="MODIFIED", body=edge, meta=edge["metadata"], memo=memo)
    assert ready_of(writer.held) == "True", "the owned event read the Deployments ready, before the problem"

    final = get(kube_env, "cdn", "shop", namespace)
    degraded = condition(final, "Degraded")
    assert degraded is not None and degraded["status"] == "True", f"the problem was reported away: {degraded}"
    assert "shop-minio" in degraded["message"]
