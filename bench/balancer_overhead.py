"""Balancer overhead: wrk against a cached 10 KB object three ways, side by side in one run.

1. client -> edge (direct)
2. client -> edgefleet balancer (HAProxy run by the agent) -> edge
3. client -> plain HAProxy configured by hand (the anchor: what HAProxy alone costs) -> edge

The edge, the balancer (agent and its HAProxy) and the anchor HAProxy all run on core 0, as a balancer and an
edge share a node; wrk runs on core 1. Rounds alternate the three paths so neighbours' load hits them alike.
CPU per request is read from /proc (user + system of each process tree) during each run.

    .venv/bin/python bench/balancer_overhead.py --duration 5 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import WrkResult, cpu_seconds, edgefleet, free_port, process, seed_file_origin, wait_http, wrk

ANCHOR_CONFIG = """\
global
    maxconn 4096
    nbthread 1
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
frontend data
    bind 127.0.0.1:{port}
    default_backend edges
backend edges
    balance uri whole path-only
    hash-type consistent
    hash-balance-factor 125
    http-reuse always
    server edge-0 127.0.0.1:{edge}
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the three paths")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    runs: dict[str, list[tuple[WrkResult, float, float]]] = {"direct": [], "balancer": [], "haproxy": []}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        work = Path(tmp)
        seed_file_origin(work / "assets", {"bench/10k.bin": b"x" * 10_240})
        origin, edge, edge_admin, bal, bal_admin, anchor = (free_port() for _ in range(6))
        stack.enter_context(process(edgefleet("origin", "--listen", f"127.0.0.1:{origin}", "--storage",
                                              f"file://{work / 'assets'}"), work / "origin.log"))  # fmt: skip
        wait_http(f"http://127.0.0.1:{origin}/healthz")
        edge_proc = stack.enter_context(process(edgefleet(
            "edge", "--listen", f"127.0.0.1:{edge}", "--admin-listen", f"127.0.0.1:{edge_admin}",
            "--origin", f"http://127.0.0.1:{origin}", "--name", "edge-0"), work / "edge.log", cpu=0))  # fmt: skip
        wait_http(f"http://127.0.0.1:{edge_admin}/healthz")
        token = "bench-token"
        balancer_proc = stack.enter_context(process(edgefleet(
            "balancer", "--listen", f"127.0.0.1:{bal}", "--admin-listen", f"127.0.0.1:{bal_admin}",
            "--admin-token", token, "--haproxy-threads", "1",
            "--edges", f"edge-0=http://127.0.0.1:{edge}"), work / "balancer.log", cpu=0))  # fmt: skip
        wait_http(f"http://127.0.0.1:{bal_admin}/readyz", headers={"Authorization": f"Bearer {token}"})
        config = work / "anchor.cfg"
        config.write_text(ANCHOR_CONFIG.format(port=anchor, edge=edge))
        anchor_proc = stack.enter_context(process(["haproxy", "-db", "-f", str(config)], work / "anchor.log", cpu=0))
        path = "/assets/bench/10k.bin"
        wait_http(f"http://127.0.0.1:{edge}{path}")  # fills the cache: every measured request is a hit
        wait_http(f"http://127.0.0.1:{anchor}{path}")
        targets = {
            "direct": (edge, edge_proc.pid),
            "balancer": (bal, balancer_proc.pid),
            "haproxy": (anchor, anchor_proc.pid),
        }
        for _ in range(args.rounds):
            for name, (port, front_pid) in targets.items():
                edge_cpu = cpu_seconds(edge_proc.pid)
                result = wrk(f"http://127.0.0.1:{port}{path}", args.duration, args.connections, cpu=1,
                             server_pid=front_pid)  # fmt: skip
                edge_us = (cpu_seconds(edge_proc.pid) - edge_cpu) / max(1, result.requests) * 1e6
                front_us = result.server_cpu_us_per_request if name != "direct" else float("nan")
                runs[name].append((result, front_us, edge_us))

    labels = {
        "direct": "client -> edge",
        "balancer": "client -> edgefleet balancer -> edge",
        "haproxy": "client -> plain HAProxy -> edge",
    }
    print(f"median of {args.rounds} alternating rounds, {args.duration}s each, {args.connections} connections")
    print(f"{'path':<38}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'front us/req':>14}{'edge us/req':>13}")
    summary: dict[str, tuple[float, float, float, float]] = {}
    for name, results in runs.items():
        rps = statistics.median(r.requests_per_second for r, _, _ in results)
        p50 = statistics.median(r.p50_ms for r, _, _ in results)
        p99 = statistics.median(r.p99_ms for r, _, _ in results)
        errors = sum(r.errors for r, _, _ in results)
        front = statistics.median(f for _, f, _ in results)
        edge_us = statistics.median(e for _, _, e in results)
        summary[name] = (rps, p99, front, edge_us)
        print(f"{labels[name]:<38}{rps:>9.0f}{p50:>9.2f}{p99:>9.2f}{errors:>8}{front:>14.1f}{edge_us:>13.1f}")
    direct, via, anchor_s = summary["direct"], summary["balancer"], summary["haproxy"]
    print(f"throughput via balancer / direct: {via[0] / direct[0]:.2f}   plain HAProxy / direct: "
          f"{anchor_s[0] / direct[0]:.2f}")  # fmt: skip
    print(
        f"p99 via balancer / direct: {via[1] / direct[1]:.2f}x   plain HAProxy / direct: {anchor_s[1] / direct[1]:.2f}x"
    )
    print(f"balancer CPU per request / edge hit CPU per request (direct run): {via[2] / direct[3]:.2f}   "
          f"plain HAProxy: {anchor_s[2] / direct[3]:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
