"""Balancer overhead: wrk against a cached 10 KB object three ways, side by side in one run.

1. client -> edge (direct)
2. client -> edgefleet balancer (HAProxy run by the agent) -> edge
3. client -> plain HAProxy configured by hand (the anchor: what HAProxy alone costs) -> edge

The edge, the balancer (agent and its HAProxy) and the anchor HAProxy all run on core 0, as a balancer and an
edge share a node; wrk runs on core 1. Every path gets the same wrk load (one thread, the same connections, all
kept alive, the same URL), and rounds alternate the three paths so neighbours' load hits them alike.

CPU per request is user + system time from /proc/<pid>/stat (which sums every thread of a process) over each
wrk run. The balancer's is split into its HAProxy (master and worker) and the Python agent, so what the agent
adds is visible. Two ratios answer "the balancer's CPU per request against an edge hit's":

- against the direct run of the same round (the edge serving wrk alone): the issue's definition; each round's
  ratio is taken, then the median, so a neighbour's burst that lands on one round does not skew the rest;
- against the edge's own CPU per request in the same run (the edge serving the balancer's requests at the same
  moment on the same core): both sides see exactly the same neighbours, so this one moves least between runs.

    .venv/bin/python bench/balancer_overhead.py --duration 5 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import WrkResult, _descendants, edgefleet, free_port, process, seed_file_origin, wait_http, wrk

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


@dataclass(frozen=True)
class Times:
    """User and system CPU seconds."""

    user: float = 0.0
    system: float = 0.0

    def __sub__(self, other: Times) -> Times:
        return Times(self.user - other.user, self.system - other.system)

    def __add__(self, other: Times) -> Times:
        return Times(self.user + other.user, self.system + other.system)

    @property
    def total(self) -> float:
        return self.user + self.system


def times(pids: list[int]) -> Times:
    ticks = os.sysconf("SC_CLK_TCK")
    user = system = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
        user, system = user + int(fields[11]), system + int(fields[12])  # utime, stime: fields 14 and 15
    return Times(user / ticks, system / ticks)


@dataclass(frozen=True)
class Run:
    result: WrkResult
    front: Times
    """The front process tree (edge for direct, agent + HAProxy for the balancer, the anchor HAProxy)."""
    agent: Times
    """The balancer's Python agent alone (zero for the other paths)."""
    edge: Times

    def us(self, t: Times) -> float:
        return t.total / max(1, self.result.requests) * 1e6


def start_origin_and_edge(stack: ExitStack, work: Path) -> tuple[int, int, subprocess.Popen[bytes]]:
    """An origin serving ``/assets/bench/10k.bin`` and one edge in front of it, pinned to core 0 and healthy:
    (edge port, edge admin port, edge process). Both stop with ``stack``."""
    seed_file_origin(work / "assets", {"bench/10k.bin": b"x" * 10_240})
    origin, edge, edge_admin = free_port(), free_port(), free_port()
    stack.enter_context(process(edgefleet("origin", "--listen", f"127.0.0.1:{origin}", "--storage",
                                          f"file://{work / 'assets'}"), work / "origin.log"))  # fmt: skip
    wait_http(f"http://127.0.0.1:{origin}/healthz")
    edge_proc = stack.enter_context(process(edgefleet(
        "edge", "--listen", f"127.0.0.1:{edge}", "--admin-listen", f"127.0.0.1:{edge_admin}",
        "--origin", f"http://127.0.0.1:{origin}", "--name", "edge-0"), work / "edge.log", cpu=0))  # fmt: skip
    wait_http(f"http://127.0.0.1:{edge_admin}/healthz")
    return edge, edge_admin, edge_proc


def measure(url: str, args: argparse.Namespace, front_pid: int, agent_pid: int | None, edge_pid: int) -> Run:
    front_pids = _descendants(front_pid)  # the tree is settled by now: HAProxy does not fork under load
    agent = [agent_pid] if agent_pid else []
    before = times(front_pids), times(agent), times([edge_pid])
    result = wrk(url, args.duration, args.connections, cpu=1)
    after = times(front_pids), times(agent), times([edge_pid])
    return Run(result, after[0] - before[0], after[1] - before[1], after[2] - before[2])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the three paths")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    runs: dict[str, list[Run]] = {"direct": [], "balancer": [], "haproxy": []}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        work = Path(tmp)
        edge, _, edge_proc = start_origin_and_edge(stack, work)
        bal, bal_admin, anchor = (free_port() for _ in range(3))
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
        wait_http(f"http://127.0.0.1:{bal}{path}")
        wait_http(f"http://127.0.0.1:{anchor}{path}")
        targets = {
            "direct": (edge, edge_proc.pid, None),
            "balancer": (bal, balancer_proc.pid, balancer_proc.pid),
            "haproxy": (anchor, anchor_proc.pid, None),
        }
        for _ in range(args.rounds):
            for name, (port, front_pid, agent_pid) in targets.items():
                url = f"http://127.0.0.1:{port}{path}"
                runs[name].append(measure(url, args, front_pid, agent_pid, edge_proc.pid))
    report(runs, args)
    return 0


def report(runs: dict[str, list[Run]], args: argparse.Namespace) -> None:
    labels = {
        "direct": "client -> edge",
        "balancer": "client -> edgefleet balancer -> edge",
        "haproxy": "client -> plain HAProxy -> edge",
    }
    med = statistics.median
    print(f"median of {args.rounds} alternating rounds, {args.duration}s each, {args.connections} connections")
    print(f"{'path':<38}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
          f"{'front us/req':>14}{'(user+sys)':>13}{'edge us/req':>13}")  # fmt: skip
    for name, rounds in runs.items():
        front = med(r.us(r.front) for r in rounds)
        user = med(r.us(Times(r.front.user)) for r in rounds)
        system = med(r.us(Times(0.0, r.front.system)) for r in rounds)
        split = f"{user:.1f}+{system:.1f}"
        print(f"{labels[name]:<38}{med(r.result.requests_per_second for r in rounds):>9.0f}"
              f"{med(r.result.p50_ms for r in rounds):>9.2f}{med(r.result.p99_ms for r in rounds):>9.2f}"
              f"{sum(r.result.errors for r in rounds):>8}{front:>14.1f}{split:>13}"
              f"{med(r.us(r.edge) for r in rounds):>13.1f}")  # fmt: skip
    direct, via, anchor = runs["direct"], runs["balancer"], runs["haproxy"]

    def ratio(key: str, paths: list[tuple[Run, Run]]) -> float:
        return med(getattr(a.result, key) / getattr(d.result, key) for a, d in paths)

    pairs = {"balancer": list(zip(via, direct, strict=True)), "haproxy": list(zip(anchor, direct, strict=True))}
    print(f"throughput via balancer / direct: {ratio('requests_per_second', pairs['balancer']):.2f}   "
          f"plain HAProxy / direct: {ratio('requests_per_second', pairs['haproxy']):.2f}")  # fmt: skip
    print(f"p99 via balancer / direct: {ratio('p99_ms', pairs['balancer']):.2f}x   "
          f"plain HAProxy / direct: {ratio('p99_ms', pairs['haproxy']):.2f}x")  # fmt: skip
    agent = med(r.us(r.agent) for r in via)
    haproxy_only = [(Run(r.result, r.front - r.agent, Times(), r.edge), d) for r, d in pairs["balancer"]]
    for title, paths in (("balancer", pairs["balancer"]), ("its HAProxy alone", haproxy_only),
                         ("plain HAProxy", pairs["haproxy"])):  # fmt: skip
        vs_direct = med(r.us(r.front) / d.us(d.front) for r, d in paths)
        same_run = med(r.us(r.front) / r.us(r.edge) for r, _ in paths)
        print(f"CPU per request, {title:<18} / edge hit: {vs_direct:.2f} (direct run of the same round)   "
              f"{same_run:.2f} (the edge in the same run)")  # fmt: skip
    print(f"the balancer's agent: {agent:.2f} us/req")


if __name__ == "__main__":
    sys.exit(main())
