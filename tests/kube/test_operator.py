"""The operator on the real control plane (kube-controller-manager makes ReplicaSets, kwok makes pods Ready),
running as a subprocess under a ServiceAccount whose RBAC is the chart's rules file, with a real Redis bus."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
import redis.asyncio as aioredis
import yaml
from edgefleet_operator.render import CONFIG_HASH, RenderOptions, render

from edgefleet.api import CdnCluster
from edgefleet.bus import BusEntry, PurgeBus, RedisCheckpoint
from edgefleet.embedded_redis import free_port
from edgefleet.testing.kube_testenv import KubeTestEnv

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "helm" / "edgefleet" / "files" / "operator-rbac-rules.yaml"
EXAMPLE = yaml.safe_load((ROOT / "examples" / "cdncluster.yaml").read_text())
T = TypeVar("T")
DEADLINE = 60.0


def eventually(probe: Callable[[], T | None], what: str, timeout: float = DEADLINE) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


class Operator:
    def __init__(self, env: KubeTestEnv, kubeconfig: Path, bus_url: str, log: Path) -> None:
        self.env, self.kubeconfig, self.bus_url, self.log = env, kubeconfig, bus_url, log
        self.process: subprocess.Popen[bytes] | None = None
        self.metrics_port = free_port()

    def start(self) -> None:
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edgefleet.cli", "operator", "--all-namespaces", "--drift-interval", "2s",
             "--metrics-listen", f"127.0.0.1:{self.metrics_port}", "--bus-url-override", self.bus_url,
             "--image", "example.invalid/edgefleet:test"],
            stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
        )  # fmt: skip
        handle.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@pytest.fixture(scope="module")
def operator(
    crds_installed: KubeTestEnv, redis_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    env = crds_installed
    env.kubectl("create", "namespace", "edgefleet-system", check=False)
    env.kubectl("create", "serviceaccount", "edgefleet-operator", "-n", "edgefleet-system", check=False)
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "edgefleet-operator-test"}, "rules": yaml.safe_load(RULES.read_text())}  # fmt: skip
    env.kubectl("apply", "-f", "-", input=json.dumps(role))
    env.kubectl("create", "clusterrolebinding", "edgefleet-operator-test", "--clusterrole=edgefleet-operator-test",
                "--serviceaccount=edgefleet-system:edgefleet-operator", check=False)  # fmt: skip
    kubeconfig = env.service_account_kubeconfig("edgefleet-system", "edgefleet-operator")
    op = Operator(env, kubeconfig, redis_server.url, tmp_path_factory.mktemp("operator") / "operator.log")
    op.start()
    yield op
    op.stop()


def get(env: KubeTestEnv, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
    result = env.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def condition(body: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    for item in ((body or {}).get("status") or {}).get("conditions") or []:
        if item["type"] == kind:
            return dict(item)
    return None


def shop(namespace: str, **spec_changes: Any) -> dict[str, Any]:
    manifest = copy.deepcopy(EXAMPLE)
    manifest["metadata"]["namespace"] = namespace
    manifest["spec"]["autoscaling"]["enabled"] = False
    manifest["spec"]["purgeBus"]["timeout"] = "6s"
    for path, value in spec_changes.items():
        node = manifest["spec"]
        *parents, leaf = path.split("__")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return manifest


def create_minio_secret(env: KubeTestEnv, namespace: str) -> None:
    env.kubectl("create", "secret", "generic", "shop-minio", "-n", namespace,
                "--from-literal=accessKey=AKIA", "--from-literal=secretKey=s3cr3t")  # fmt: skip


def ready_fleet(env: KubeTestEnv, namespace: str, manifest: dict[str, Any], operator: Operator) -> dict[str, Any]:
    env.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))

    def is_ready() -> dict[str, Any] | None:
        body = get(env, "cdn", "shop", namespace)
        ready = condition(body, "Ready")
        observed = ((body or {}).get("status") or {}).get("observedGeneration")
        seen = body is not None and observed == body["metadata"]["generation"]
        if ready is not None and ready["status"] == "True" and seen:
            return body
        return None

    try:
        return eventually(is_ready, "the CdnCluster to be Ready", timeout=90)
    except pytest.fail.Exception:
        print(operator.tail())
        raise


OWNED = [
    ("deployment", "shop-origin"), ("deployment", "shop-edge"), ("deployment", "shop-balancer"),
    ("deployment", "shop-redis"), ("service", "shop-origin"), ("service", "shop-edge"), ("service", "shop"),
    ("service", "shop-redis"), ("poddisruptionbudget", "shop-edge"), ("serviceaccount", "shop-balancer"),
    ("role", "shop-balancer"), ("rolebinding", "shop-balancer"),
]  # fmt: skip


def test_render_is_byte_identical_and_accepted_by_the_api_server(kube_env: KubeTestEnv, namespace: str) -> None:
    cluster = CdnCluster.model_validate(shop(namespace))
    first = yaml.safe_dump_all(render(cluster, RenderOptions()))
    assert first == yaml.safe_dump_all(render(cluster, RenderOptions()))
    result = kube_env.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=first, check=False)
    assert result.returncode == 0, result.stderr
    example = str(ROOT / "examples/cdncluster.yaml")
    cli = subprocess.run([sys.executable, "-m", "edgefleet.cli", "render", "-f", example],
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert "AKIA" not in cli.stdout and "secretKeyRef" in cli.stdout, "secrets are referenced, never inlined"


def test_example_becomes_a_ready_fleet_of_owned_secure_objects(
    operator: Operator, kube_env: KubeTestEnv, namespace: str
) -> None:
    create_minio_secret(kube_env, namespace)
    body = ready_fleet(kube_env, namespace, shop(namespace), operator)
    assert body["status"]["edgesReady"] == "2/2"
    assert body["status"]["edge"]["selector"]
    for kind, name in OWNED:
        obj = get(kube_env, kind, name, namespace)
        assert obj is not None, f"{kind} {name} missing"
        owner = obj["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["controller"]) == ("CdnCluster", "shop", True)
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "edgefleet-operator"
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "edgefleet"
    edge = get(kube_env, "deployment", "shop-edge", namespace)
    assert edge is not None
    pod = edge["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]["securityContext"]
    assert container["readOnlyRootFilesystem"] is True and container["allowPrivilegeEscalation"] is False
    assert container["capabilities"]["drop"] == ["ALL"]
    events = kube_env.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    messages = {e["message"] for e in json.loads(events)["items"]}
    assert "Created Deployment shop-edge" in messages


def test_reapplying_changes_nothing_and_spec_changes_roll_the_right_pods(
    operator: Operator, kube_env: KubeTestEnv, namespace: str
) -> None:
    create_minio_secret(kube_env, namespace)
    ready_fleet(kube_env, namespace, shop(namespace), operator)
    versions = {o: get(kube_env, *o, namespace)["metadata"]["resourceVersion"] for o in OWNED}  # type: ignore[index]
    kube_env.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(shop(namespace)))
    reconciled = float(_metric(operator, "edgefleet_operator_reconciles_total"))
    eventually(lambda: float(_metric(operator, "edgefleet_operator_reconciles_total")) >= reconciled + 2,
               "two more drift reconciles")  # fmt: skip
    assert {o: get(kube_env, *o, namespace)["metadata"]["resourceVersion"] for o in OWNED} == versions  # type: ignore[index]

    def template_hash(name: str) -> str:
        return get(kube_env, "deployment", name, namespace)["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH]  # type: ignore[index]

    edge_hash, origin_hash = template_hash("shop-edge"), template_hash("shop-origin")
    changed = shop(namespace, edge__cache__memory="512Mi", origin__defaultTtl="2h", edge__replicas={"min": 3, "max": 8})
    kube_env.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(changed))
    eventually(lambda: template_hash("shop-edge") != edge_hash, "the edge pods to roll for the new cache size")
    eventually(lambda: template_hash("shop-origin") != origin_hash, "the origin pods to roll for the new TTL")
    eventually(lambda: get(kube_env, "deployment", "shop-edge", namespace)["spec"]["replicas"] == 3, "3 edges")  # type: ignore[index]
    assert (
        get(kube_env, "deployment", "shop-balancer", namespace)["metadata"]["resourceVersion"]
        == versions[  # type: ignore[index]
            ("deployment", "shop-balancer")
        ]
    ), "the balancer did not change, so it was not touched"


def _metric(operator: Operator, name: str) -> str:
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5).read().decode()
    return str(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{")))


def test_hand_edits_and_deleted_objects_are_put_back(operator: Operator, kube_env: KubeTestEnv, namespace: str) -> None:
    create_minio_secret(kube_env, namespace)
    ready_fleet(kube_env, namespace, shop(namespace), operator)
    kube_env.kubectl("scale", "deployment", "shop-edge", "-n", namespace, "--replicas=7")
    kube_env.kubectl("delete", "service", "shop-origin", "-n", namespace)
    eventually(lambda: get(kube_env, "deployment", "shop-edge", namespace)["spec"]["replicas"] == 2,  # type: ignore[index]
               "edge replicas to be restored")  # fmt: skip
    eventually(lambda: get(kube_env, "service", "shop-origin", namespace), "the origin Service to be recreated")


def test_missing_secret_degrades_the_fleet_until_it_is_created(
    operator: Operator, kube_env: KubeTestEnv, namespace: str
) -> None:
    kube_env.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(shop(namespace)))

    def degraded() -> dict[str, Any] | None:
        found = condition(get(kube_env, "cdn", "shop", namespace), "Degraded")
        return found if found and found["status"] == "True" else None

    message = eventually(degraded, "Degraded=True")["message"]
    assert "shop-minio" in message and "does not exist" in message
    create_minio_secret(kube_env, namespace)
    ready_fleet(kube_env, namespace, shop(namespace), operator)
    assert condition(get(kube_env, "cdn", "shop", namespace), "Degraded")["status"] == "False"  # type: ignore[index]


def test_deleting_the_cluster_removes_everything(operator: Operator, kube_env: KubeTestEnv, namespace: str) -> None:
    create_minio_secret(kube_env, namespace)
    ready_fleet(kube_env, namespace, shop(namespace), operator)
    kube_env.kubectl("delete", "cdn", "shop", "-n", namespace)
    for kind, name in OWNED:
        eventually(lambda k=kind, n=name: get(kube_env, k, n, namespace) is None, f"{kind} {name} to be collected")


# ---- purges ---------------------------------------------------------------------------------------------


def edge_pods(env: KubeTestEnv, namespace: str) -> list[str]:
    pods = json.loads(env.kubectl("get", "pods", "-n", namespace, "-l", "app.kubernetes.io/component=edge",
                                  "-o", "json").stdout)["items"]  # fmt: skip
    return sorted(p["metadata"]["name"] for p in pods)


class FakeEdges:
    """Bus consumers that acknowledge purges like edges would, named after the edge pods."""

    def __init__(self, redis_url: str, cluster: str, names: list[str]) -> None:
        self.redis_url, self.cluster, self.names = redis_url, cluster, names
        self.applied: dict[str, list[str]] = {name: [] for name in names}
        self._loop = asyncio.new_event_loop()
        self._thread: Any = None

    def start(self) -> None:
        import threading

        async def main() -> None:
            client = aioredis.Redis.from_url(self.redis_url)
            bus = PurgeBus(client, self.cluster)
            tasks = []
            for name in self.names:
                checkpoint = RedisCheckpoint(client, f"test-checkpoint:{name}")
                await checkpoint.save("0-0")  # apply everything published from now on, including before start

                async def apply(entry: BusEntry, name: str = name) -> None:
                    self.applied[name].append(entry.message.purge_id)

                tasks.append(asyncio.create_task(bus.purge_consumer(name, checkpoint, block_ms=200).run(apply)))
            self._stop = asyncio.Event()
            await self._stop.wait()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await client.aclose()

        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(main(),), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)
        self._loop.close()


def purge(env: KubeTestEnv, namespace: str, name: str, **spec: Any) -> None:
    body = {"apiVersion": "cdn.edgefleet.io/v1alpha1", "kind": "PurgeRequest", "metadata": {"name": name},
            "spec": {"cluster": "shop", **spec}}  # fmt: skip
    env.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(body))


def finished(env: KubeTestEnv, namespace: str, name: str) -> dict[str, Any] | None:
    body = get(env, "purge", name, namespace)
    status = (body or {}).get("status") or {}
    return status if status.get("phase") in ("Complete", "Failed") else None


def test_purge_completes_when_every_edge_acknowledges(
    operator: Operator, kube_env: KubeTestEnv, namespace: str, redis_url: str
) -> None:
    create_minio_secret(kube_env, namespace)
    ready_fleet(kube_env, namespace, shop(namespace), operator)
    edges = edge_pods(kube_env, namespace)
    fakes = FakeEdges(redis_url, f"{namespace}.shop", edges)
    fakes.start()
    try:
        purge(kube_env, namespace, "sku-1", tags=["sku-1"], paths=["/assets/a.jpg"])
        status = eventually(lambda: finished(kube_env, namespace, "sku-1"), "the purge to finish")
    finally:
        fakes.stop()
    assert status["phase"] == "Complete", status
    assert sorted(status["acknowledgedEdges"]) == edges and status["pendingEdges"] == []
    assert status["acked"] == f"{len(edges)}/{len(edges)}"
    assert status["durationMs"] >= 0
    print(f"purge propagation to {len(edges)} edges: {status['durationMs']} ms")
    printed = kube_env.kubectl("get", "purge", "sku-1", "-n", namespace).stdout
    assert "Complete" in printed


def test_purge_fails_naming_the_edge_that_never_acknowledged(
    operator: Operator, kube_env: KubeTestEnv, namespace: str, redis_url: str
) -> None:
    create_minio_secret(kube_env, namespace)
    ready_fleet(kube_env, namespace, shop(namespace), operator)
    edges = edge_pods(kube_env, namespace)
    silent, talkative = edges[0], edges[1:]
    fakes = FakeEdges(redis_url, f"{namespace}.shop", talkative)
    fakes.start()
    try:
        purge(kube_env, namespace, "sku-2", tags=["sku-2"])
        status = eventually(lambda: finished(kube_env, namespace, "sku-2"), "the purge to time out", timeout=40)
    finally:
        fakes.stop()
    assert status["phase"] == "Failed"
    assert status["pendingEdges"] == [silent]
    assert silent in status["message"]

    def failure_event() -> bool:
        events = json.loads(kube_env.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)["items"]
        return any(e["reason"] == "Failed" and e["involvedObject"]["name"] == "sku-2" for e in events)

    eventually(failure_event, "a Warning event naming the failure")


def test_purge_for_an_unknown_cluster_fails_with_a_message(
    operator: Operator, kube_env: KubeTestEnv, namespace: str
) -> None:
    body = {"apiVersion": "cdn.edgefleet.io/v1alpha1", "kind": "PurgeRequest", "metadata": {"name": "lost"},
            "spec": {"cluster": "nope", "all": True}}  # fmt: skip
    kube_env.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(body))
    status = eventually(lambda: finished(kube_env, namespace, "lost"), "the purge to fail")
    assert status["phase"] == "Failed" and "CdnCluster nope not found" in status["message"]


def test_operator_restarted_mid_purge_publishes_once_and_completes(
    operator: Operator, kube_env: KubeTestEnv, namespace: str, redis_url: str
) -> None:
    create_minio_secret(kube_env, namespace)
    ready_fleet(kube_env, namespace, shop(namespace), operator)
    edges = edge_pods(kube_env, namespace)
    purge(kube_env, namespace, "sku-3", paths=["/assets/c.jpg"])
    eventually(lambda: ((get(kube_env, "purge", "sku-3", namespace) or {}).get("status") or {}).get("purgeId"),
               "the purge to be published")  # fmt: skip
    operator.stop()
    operator.start()
    fakes = FakeEdges(redis_url, f"{namespace}.shop", edges)
    fakes.start()
    try:
        status = eventually(lambda: finished(kube_env, namespace, "sku-3"), "the purge to finish after the restart")
    finally:
        fakes.stop()
    assert status["phase"] == "Complete"
    client = redis.Redis.from_url(redis_url)
    entries = client.xrange(f"edgefleet:{namespace}.shop:purges")
    client.close()
    assert len(entries) == 1, "a restarted operator must not publish the same purge twice"
    assert all(len(applied) == 1 for applied in fakes.applied.values())


def test_operator_account_cannot_do_more_than_it_needs(operator: Operator, kube_env: KubeTestEnv) -> None:
    account = "system:serviceaccount:edgefleet-system:edgefleet-operator"
    for verb, resource, allowed in [
        ("patch", "deployments.apps", "yes"), ("create", "secrets", "yes"), ("list", "secrets", "no"),
        ("delete", "deployments.apps", "no"), ("delete", "namespaces", "no"), ("get", "nodes", "no"),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io", "no"),
        ("patch", "cdnclusters.cdn.edgefleet.io/scale", "yes"),
    ]:  # fmt: skip
        result = kube_env.kubectl("auth", "can-i", verb, resource, f"--as={account}", "-A", check=False)
        assert result.stdout.strip() == allowed, f"{verb} {resource}: {result.stdout} {result.stderr}"


# ---- autoscaling from a real Prometheus scraping real edge processes ---------------------------------------


def test_unreachable_prometheus_holds_the_fleet_and_says_why(
    operator: Operator, kube_env: KubeTestEnv, namespace: str
) -> None:
    manifest = shop(namespace)
    manifest["spec"]["autoscaling"] = {"enabled": True, "prometheusUrl": f"http://127.0.0.1:{free_port()}",
                                       "interval": "1s", "targets": {"p95LatencyMs": 1}}  # fmt: skip
    create_minio_secret(kube_env, namespace)
    ready_fleet(kube_env, namespace, manifest, operator)

    def unhealthy() -> dict[str, Any] | None:
        found = condition(get(kube_env, "cdn", "shop", namespace), "AutoscalerHealthy")
        return found if found and found["status"] == "False" else None

    assert "did not answer" in eventually(unhealthy, "AutoscalerHealthy=False")["message"]
    body = get(kube_env, "cdn", "shop", namespace)
    assert body is not None and "desired" not in body["spec"]["edge"]["replicas"], "never scales on missing data"
    assert condition(body, "Ready")["status"] == "True"  # type: ignore[index]


def test_finished_purge_is_deleted_after_its_ttl(operator: Operator, kube_env: KubeTestEnv, namespace: str) -> None:
    body = {"apiVersion": "cdn.edgefleet.io/v1alpha1", "kind": "PurgeRequest", "metadata": {"name": "brief"},
            "spec": {"cluster": "nope", "all": True, "ttlSecondsAfterFinished": 1}}  # fmt: skip
    kube_env.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(body))
    eventually(lambda: finished(kube_env, namespace, "brief"), "the purge to fail")
    eventually(lambda: get(kube_env, "purge", "brief", namespace) is None, "the finished purge to be deleted")
    assert not (get(kube_env, "purge", "brief", namespace) or {}).get("metadata", {}).get("finalizers")
