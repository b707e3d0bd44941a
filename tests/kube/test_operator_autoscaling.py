"""The operator's autoscaler end to end: a real Prometheus scraping edge metrics, the operator deciding, the
scale subresource and the edge Deployment following. Slow hits (saturated edges) add edges; slow misses
behind fast hits (a busy origin) add none and name the origin as the bottleneck."""

from __future__ import annotations

import contextlib
import http.server
import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from edgefleet_edge.metrics import EdgeMetrics
from edgefleet_edge.store import Store
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from edgefleet.embedded_redis import free_port
from edgefleet.testing.kube_testenv import KubeTestEnv
from tests.conftest import require
from tests.kube.test_operator import RULES, Operator, condition, create_minio_secret, eventually, get, ready_fleet, shop


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
    op = Operator(env, kubeconfig, redis_server.url, tmp_path_factory.mktemp("autoscaling") / "operator.log")
    op.start()
    yield op
    op.stop()


class Children:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.processes: list[subprocess.Popen[bytes]] = []

    def spawn(self, name: str, argv: list[str]) -> None:
        with (self.directory / f"{name}.log").open("wb") as log:
            self.processes.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))

    def stop(self) -> None:
        for child in self.processes:
            child.terminate()
        for child in self.processes:
            child.wait(timeout=20)


def wait_ok(url: str) -> None:
    def ok() -> bool:
        try:
            return bool(urllib.request.urlopen(url, timeout=2).status == 200)
        except OSError:
            return False

    eventually(ok, url)


def start_prometheus(children: Children, namespace: str, targets: list[str]) -> str:
    prometheus = shutil.which("prometheus")
    require(prometheus is not None, "Prometheus (Debian package 'prometheus')")
    assert prometheus is not None
    port = free_port()
    (children.directory / "token").write_text("t")
    config = {
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [{
            "job_name": "shop-edge", "authorization": {"credentials_file": str(children.directory / "token")},
            "static_configs": [{"targets": targets, "labels": {"namespace": namespace}}],
        }],
    }  # fmt: skip
    (children.directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    children.spawn("prometheus", [prometheus, f"--config.file={children.directory / 'prometheus.yml'}",
                                  f"--storage.tsdb.path={children.directory / 'tsdb'}",
                                  f"--web.listen-address=127.0.0.1:{port}"])  # fmt: skip
    wait_ok(f"http://127.0.0.1:{port}/-/ready")
    return f"http://127.0.0.1:{port}"


def autoscaled(namespace: str, prometheus: str) -> dict[str, Any]:
    manifest = shop(namespace)
    manifest["spec"]["autoscaling"] = {
        "enabled": True, "prometheusUrl": prometheus, "interval": "2s", "targets": {"p95LatencyMs": 50},
        "scaleDownStabilization": "10m", "maxStep": 1, "minRequests": 50,
    }  # fmt: skip
    return manifest


class SaturatedEdge:
    """The real edge metric registry behind /metrics, recording what a saturated edge reports: every request a
    cache hit that took 300 ms (its CPU, not the origin, is what is slow)."""

    def __init__(self) -> None:
        self.metrics = EdgeMetrics(Store(1024, 0, None))
        self.port = free_port()
        self.stop = threading.Event()
        registry = self.metrics.registry

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.headers.get("Authorization") != "Bearer t":
                    self.send_response(401)
                    self.end_headers()
                    return
                body = generate_latest(registry)
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE_LATEST)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        threading.Thread(target=self._traffic, daemon=True).start()

    def _traffic(self) -> None:
        deadline = time.monotonic() + 150
        while not self.stop.is_set() and time.monotonic() < deadline:
            for _ in range(20):
                self.metrics.requests.labels("hit", "200").inc()
                self.metrics.duration.labels("hit").observe(0.3)
            self.stop.wait(0.2)  # the traffic's pace: 100 requests per second, bounded by the deadline

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def test_slow_hits_scale_the_fleet_and_the_decision_names_its_samples(
    operator: Operator, kube_env: KubeTestEnv, namespace: str, tmp_path: Path
) -> None:
    children = Children(tmp_path)
    edges = [SaturatedEdge(), SaturatedEdge()]
    try:
        prometheus = start_prometheus(children, namespace, [f"127.0.0.1:{e.port}" for e in edges])
        create_minio_secret(kube_env, namespace)
        ready_fleet(kube_env, namespace, autoscaled(namespace, prometheus), operator)

        def scaled() -> dict[str, Any] | None:
            body = get(kube_env, "cdn", "shop", namespace)
            return ((body or {}).get("status") or {}).get("lastScale")

        try:
            decision = eventually(scaled, "the autoscaler to scale up", timeout=90)
        except pytest.fail.Exception:
            print(operator.tail())
            raise
        assert decision["fromReplicas"] == 2 and decision["toReplicas"] == 3
        assert "p95 latency of cache hits" in decision["reason"] and "requests" in decision["reason"]
        assert decision["samples"], "the decision names the samples it used"
        assert decision["metrics"]["hitP95LatencyMs"] > 50 and decision["metrics"]["requests"] >= 50
        eventually(lambda: get(kube_env, "deployment", "shop-edge", namespace)["spec"]["replicas"] == 3,  # type: ignore[index]
                   "the edge Deployment to follow")  # fmt: skip
        healthy = condition(get(kube_env, "cdn", "shop", namespace), "AutoscalerHealthy")
        assert healthy is not None and healthy["status"] == "True"
        events = json.loads(kube_env.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)["items"]
        assert any(e["reason"] == "Scaled" and "from 2 to 3" in e["message"] for e in events)
        assert "Timer 'autoscale'" not in operator.log.read_text(), "no log line per evaluation"
    finally:
        for edge in edges:
            edge.close()
        children.stop()


def test_slow_origin_is_named_the_bottleneck_and_adds_no_edges(
    operator: Operator, kube_env: KubeTestEnv, namespace: str, tmp_path: Path
) -> None:
    """Two real edges in front of an origin that takes 150 ms per response, every request a miss: more edges
    cannot help, and the fleet says the origin is the bottleneck instead of growing."""
    children = Children(tmp_path)
    stop = threading.Event()
    try:
        origin_port = free_port()
        children.spawn("origin", [sys.executable, str(Path(__file__).with_name("slow_origin.py")), str(origin_port)])
        edges = []
        for index in range(2):
            data, admin = free_port(), free_port()
            children.spawn(f"edge-{index}", [sys.executable, "-m", "edgefleet.cli", "edge", "--listen",
                                             f"127.0.0.1:{data}", "--admin-listen", f"127.0.0.1:{admin}", "--origin",
                                             f"http://127.0.0.1:{origin_port}", "--admin-token", "t",
                                             "--name", f"edge-{index}"])  # fmt: skip
            edges.append((data, admin))
        for _, admin in edges:
            wait_ok(f"http://127.0.0.1:{admin}/healthz")
        prometheus = start_prometheus(children, namespace, [f"127.0.0.1:{a}" for _, a in edges])

        def load() -> None:
            counter = 0
            deadline = time.monotonic() + 150
            while not stop.is_set() and time.monotonic() < deadline:
                counter += 1
                data = edges[counter % 2][0]
                with contextlib.suppress(OSError):
                    urllib.request.urlopen(f"http://127.0.0.1:{data}/assets/p.jpg?bust={counter}", timeout=5).read()

        for thread in [threading.Thread(target=load, daemon=True) for _ in range(4)]:
            thread.start()
        create_minio_secret(kube_env, namespace)
        ready_fleet(kube_env, namespace, autoscaled(namespace, prometheus), operator)

        def origin_bound() -> dict[str, Any] | None:
            found = condition(get(kube_env, "cdn", "shop", namespace), "OriginBound")
            return found if found and found["status"] == "True" else None

        try:
            bound = eventually(origin_bound, "OriginBound=True", timeout=90)
        except pytest.fail.Exception:
            print(operator.tail())
            raise
        assert "misses" in bound["message"] and "more edges cannot help" in bound["message"]
        body = get(kube_env, "cdn", "shop", namespace)
        assert body is not None and "desired" not in body["spec"]["edge"]["replicas"], "no edge added"
        assert "lastScale" not in body["status"]
        events = json.loads(kube_env.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)["items"]
        assert any(e["reason"] == "OriginBound" and e["type"] == "Warning" for e in events)
    finally:
        stop.set()
        children.stop()
