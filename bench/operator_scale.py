"""The operator at scale on the real control plane (kube-apiserver, etcd, controller-manager, scheduler, kwok).

100 CdnClusters, then 1,000 PurgeRequests acknowledged by stand-in edges on a real Redis bus. Reports:

- time from applying the CdnClusters until every one is Ready, and from creating the PurgeRequests until
  every one is Complete;
- the operator's API requests per minute, idle and under purge load, from kube-apiserver's
  ``apiserver_request_total``: the server's count while the operator runs, minus what the bench itself sent,
  minus the control plane's own rate measured with the operator stopped;
- the operator's memory (resident now, and peak).

    python bench/operator_scale.py                         # this checkout's operator
    python bench/operator_scale.py --operator-source DIR   # another checkout's (e.g. main, for before/after)

The stand-in edges are one Redis reader per fleet that acknowledges every purge for each edge pod of that
fleet, as real edges would (they are kwok pods: there is no process behind them).

Measured on 2 shared cores (Dec 2026), each version with its own defaults, 60 s windows:

    main bdcef70:       Ready 198 s; Complete 234 s; operator requests/min idle 6048, under purge load 4736
                        (18,702 requests for the 1,000 purges); 157 MiB
    issue-17-operator:  Ready 174 s; Complete 45 s; operator requests/min idle 2 (watch reconnects), under purge
                        load 6699 (5,049 requests for the 1,000 purges); 167 MiB

    issue-17-operator with main's 60 s drift timer (--operator-arg=--drift-interval=60s): idle 3006
                        (the drift reconciles: 100 fleets x ~30 requests a minute); Complete 70 s; 170 MiB

Idle on main was drift reconciles every 60 s of every fleet (each applies ~30 objects), re-applies triggered by
the operator's own creations, and the purge follower's LIST every 0.5 s. Now, between drift checks, idle is
watches only; the drift check is a safety net every 10 minutes (owned objects are watched), which averages
~300 requests/min over 100 fleets and does not fall inside this bench's idle window (it first runs 10 min
after start).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import yaml
from kubernetes import client as k8s

from edgefleet.bus import PurgeBus
from edgefleet.embedded_redis import EmbeddedRedis, free_port
from edgefleet.testing.kube_testenv import KubeTestEnv, _fake_node

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "helm" / "edgefleet" / "files" / "operator-rbac-rules.yaml"
NAMESPACE = "bench"
GROUP, VERSION = "cdn.edgefleet.io", "v1alpha1"
POLL = 2.0


def cluster_manifest(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "CdnCluster",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "origin": {"storage": {"filesystem": {"hostPath": "/var/lib/edgefleet/assets"}},
                       "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}},
            "edge": {"replicas": {"min": 2, "max": 4}, "cache": {"memory": "32Mi", "disk": "0"},
                     "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}},
            "balancer": {"replicas": 1, "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}},
        },
    }  # fmt: skip


@dataclass
class Counted:
    """The bench's own requests to the API server, so they can be taken out of the server's count."""

    requests: int = 0

    def __call__(self, n: int = 1) -> None:
        self.requests += n


def requests_by_kind(env: KubeTestEnv) -> dict[str, float]:
    """``apiserver_request_total`` by "VERB resource[/subresource]" (summed over codes and scopes)."""
    text = env.kubectl("get", "--raw", "/metrics", timeout=60).stdout
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("apiserver_request_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
            key = f"{labels.get('verb')} {labels.get('resource')}"
            if labels.get("subresource"):
                key += f"/{labels['subresource']}"
            out[key] = out.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def server_requests(env: KubeTestEnv) -> float:
    """Sum of ``apiserver_request_total`` (every verb, resource and code). Reading it is not counted by it:
    /metrics is a non-resource URL the metric does not include."""
    return sum(requests_by_kind(env).values())


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {key: after[key] - before.get(key, 0.0) for key in after if after[key] > before.get(key, 0.0)}


def beyond_baseline(
    window: dict[str, float], seconds: float, baseline: dict[str, float], baseline_seconds: float
) -> float:
    """Requests per minute in ``window`` above the control plane's own rate, kind by kind (a kind the operator
    never uses cancels out instead of adding its noise)."""
    extra = 0.0
    for key, count in window.items():
        extra += max(0.0, count / seconds - baseline.get(key, 0.0) / baseline_seconds)
    return extra * 60


def top_changes(before: dict[str, float], after: dict[str, float], n: int = 8) -> str:
    grown = sorted(((after[k] - before.get(k, 0.0), k) for k in after), reverse=True)[:n]
    return ", ".join(f"{k} {v:.0f}" for v, k in grown if v > 0)


def memory_kib(pid: int) -> tuple[int, int]:
    """(resident, peak resident) of ``pid`` in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


class StandInEdges:
    """Acknowledges every purge on each fleet's bus for each of the fleet's edge pods."""

    def __init__(self, redis_url: str, members: dict[str, list[str]]) -> None:
        self.redis_url, self.members = redis_url, members
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        client = aioredis.Redis.from_url(self.redis_url)
        buses = {fleet: PurgeBus(client, f"{NAMESPACE}.{fleet}") for fleet in self.members}
        seen = {fleet: "0-0" for fleet in self.members}
        try:
            while not self.stop.is_set():
                for fleet, bus in buses.items():
                    for entry in await bus.read_purges(after=seen[fleet]):
                        for member in self.members[fleet]:
                            await bus.acknowledge(entry.entry_id, member)
                        seen[fleet] = entry.entry_id
                await asyncio.sleep(0.1)  # the stand-ins' polling period of the bus (bounded by self.stop)
        finally:
            await client.aclose()


@dataclass
class Result:
    label: str
    clusters: int
    purges: int
    ready_seconds: float = 0.0
    complete_seconds: float = 0.0
    idle_per_minute: float = 0.0
    load_per_minute: float = 0.0
    baseline_per_minute: float = 0.0
    rss_mib: float = 0.0
    peak_rss_mib: float = 0.0
    notes: list[str] = field(default_factory=list)


def run(args: argparse.Namespace) -> Result:
    result = Result(args.label, args.clusters, args.purges)
    source = Path(args.operator_source).resolve() if args.operator_source else ROOT
    with KubeTestEnv() as env:
        for index in (1, 2):
            env.kubectl("apply", "-f", "-", input=json.dumps(_fake_node(f"kwok-node-{index}")))
        env.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(source / "crds"))
        crds = ("crd/cdnclusters.cdn.edgefleet.io", "crd/purgerequests.cdn.edgefleet.io")
        # kubectl wait fails outright while a new CRD has no conditions yet: ask again under a deadline.
        wait_for(lambda: env.kubectl("wait", "--for=condition=Established", "--timeout=10s", *crds,
                                     check=False).returncode == 0, "the CRDs to be Established", 60, None)  # fmt: skip
        for argv in (["create", "namespace", NAMESPACE], ["create", "namespace", "edgefleet-system"],
                     ["create", "serviceaccount", "edgefleet-operator", "-n", "edgefleet-system"],
                     ["create", "clusterrolebinding", "edgefleet-operator", "--clusterrole=edgefleet-operator",
                      "--serviceaccount=edgefleet-system:edgefleet-operator"]):  # fmt: skip
            env.kubectl(*argv)
        role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "edgefleet-operator"}, "rules": yaml.safe_load(RULES.read_text())}  # fmt: skip
        env.kubectl("apply", "-f", "-", input=json.dumps(role))
        kubeconfig = env.service_account_kubeconfig("edgefleet-system", "edgefleet-operator")
        redis = EmbeddedRedis()
        redis.start()
        api = k8s.CustomObjectsApi(env.api_client())
        core = k8s.CoreV1Api(env.api_client())
        own = Counted()
        log = (env.workdir / "operator.log").open("wb")
        python_path = os.pathsep.join([str(source), str(source / "operator"), str(source / "edge_image"),
                                       str(source / "origin_image")])  # fmt: skip
        operator = subprocess.Popen(
            [sys.executable, "-m", "edgefleet.cli", "operator", "--all-namespaces",
             "--metrics-listen", f"127.0.0.1:{free_port()}", "--bus-url-override", redis.url,
             "--image", "example.invalid/edgefleet:bench", *args.operator_arg],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "KUBECONFIG": str(kubeconfig), "PYTHONPATH": python_path},
        )  # fmt: skip
        try:
            names = [f"c{i:03d}" for i in range(args.clusters)]
            started = time.monotonic()
            for name in names:
                api.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "cdnclusters", cluster_manifest(name))
                own()

            def ready() -> int:
                own()
                items = api.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "cdnclusters")["items"]
                return sum(
                    1 for item in items
                    if any(c.get("type") == "Ready" and c.get("status") == "True"
                           for c in (item.get("status") or {}).get("conditions") or [])
                )  # fmt: skip

            wait_for(lambda: ready() == len(names), "every CdnCluster Ready", args.timeout, operator)
            result.ready_seconds = time.monotonic() - started
            print(f"{len(names)} CdnClusters Ready after {result.ready_seconds:.1f}s", flush=True)

            time.sleep(args.settle)  # let the creation burst's stragglers (rollout status updates) pass
            kinds, own_before = requests_by_kind(env), own.requests
            time.sleep(args.idle_seconds)  # the idle window: the bench sends nothing
            kinds_after = requests_by_kind(env)
            idle_kinds = delta(kinds, kinds_after)
            idle = sum(kinds_after.values()) - sum(kinds.values()) - (own.requests - own_before)
            print(f"idle window: {idle:.0f} requests in {args.idle_seconds:.0f}s (control plane included): "
                  f"{top_changes(kinds, kinds_after)}", flush=True)  # fmt: skip

            own()
            pods = core.list_namespaced_pod(NAMESPACE, label_selector="app.kubernetes.io/component=edge").items
            members: dict[str, list[str]] = {name: [] for name in names}
            for pod in pods:
                members[pod.metadata.labels["app.kubernetes.io/instance"]].append(pod.metadata.name)
            edges = StandInEdges(redis.url, members)
            edges.thread.start()
            load_before, own_before = requests_by_kind(env), own.requests
            started = time.monotonic()
            for index in range(args.purges):
                body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "PurgeRequest",
                        "metadata": {"name": f"p{index:04d}", "namespace": NAMESPACE},
                        "spec": {"cluster": names[index % len(names)], "tags": [f"sku-{index}"]}}  # fmt: skip
                api.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "purgerequests", body)
                own()

            def complete() -> int:
                own()
                items = api.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "purgerequests")["items"]
                return sum(1 for item in items if (item.get("status") or {}).get("phase") == "Complete")

            wait_for(lambda: complete() == args.purges, "every PurgeRequest Complete", args.timeout, operator)
            result.complete_seconds = time.monotonic() - started
            load_seconds = result.complete_seconds
            load_kinds = delta(load_before, requests_by_kind(env))
            bench_lists = own.requests - own_before - args.purges
            load_kinds["POST purgerequests"] = load_kinds.get("POST purgerequests", 0.0) - args.purges
            load_kinds["LIST purgerequests"] = load_kinds.get("LIST purgerequests", 0.0) - bench_lists
            load = sum(load_kinds.values())
            print(f"purge load: {load:.0f} requests in {load_seconds:.0f}s (bench's own taken out)", flush=True)
            edges.stop.set()
            edges.thread.join(timeout=10)
            print(f"{args.purges} PurgeRequests Complete after {result.complete_seconds:.1f}s", flush=True)
            rss, peak = memory_kib(operator.pid)
            result.rss_mib, result.peak_rss_mib = rss / 1024, peak / 1024
        finally:
            operator.terminate()
            try:
                operator.wait(timeout=30)
            except subprocess.TimeoutExpired:
                operator.kill()
                operator.wait()
            log.close()
        # The control plane's own rate with 100 fleets of kwok pods and no operator.
        time.sleep(args.settle)
        kinds = requests_by_kind(env)
        time.sleep(args.idle_seconds)  # the baseline window: nobody but the control plane
        kinds_after = requests_by_kind(env)
        baseline_kinds = delta(kinds, kinds_after)
        baseline = sum(baseline_kinds.values())
        print(f"baseline window: {baseline:.0f} requests in {args.idle_seconds:.0f}s: "
              f"{top_changes(kinds, kinds_after)}", flush=True)  # fmt: skip
        result.baseline_per_minute = baseline / args.idle_seconds * 60
        result.idle_per_minute = beyond_baseline(idle_kinds, args.idle_seconds, baseline_kinds, args.idle_seconds)
        result.load_per_minute = beyond_baseline(load_kinds, load_seconds, baseline_kinds, args.idle_seconds)
        redis.stop()
        if args.keep_log:
            shutil.copy(env.workdir / "operator.log", args.keep_log)
    return result


def wait_for(probe: Any, what: str, timeout: float, operator: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if operator is not None and operator.poll() is not None:
            raise SystemExit(f"the operator exited ({operator.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(POLL)  # polling a condition under a deadline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--purges", type=int, default=1000)
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="length of each idle window")
    parser.add_argument("--settle", type=float, default=15.0, help="pause before each idle window")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--operator-source", default=None, help="run the operator from this checkout")
    parser.add_argument("--operator-arg", action="append", default=[], help="extra operator flag, e.g. "
                        "--operator-arg=--drift-interval=60s (repeatable)")  # fmt: skip
    parser.add_argument("--label", default="this checkout")
    parser.add_argument("--keep-log", type=Path, default=None, help="copy the operator's log here")
    args = parser.parse_args(argv)
    result = run(args)
    print(json.dumps(result.__dict__, indent=2))
    print(
        f"\n{result.label}: {result.clusters} CdnClusters Ready in {result.ready_seconds:.1f}s; "
        f"{result.purges} PurgeRequests Complete in {result.complete_seconds:.1f}s; operator API requests/min: "
        f"idle {result.idle_per_minute:.0f}, under purge load {result.load_per_minute:.0f} "
        f"(control plane alone {result.baseline_per_minute:.0f}/min); operator memory {result.rss_mib:.0f} MiB "
        f"(peak {result.peak_rss_mib:.0f} MiB)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
