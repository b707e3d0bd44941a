"""10 KB cache hits through one edge with ``--workers 1`` vs ``--workers 2`` (same origin, objects, wrk load).

    .venv/bin/python bench/edge_workers.py --duration 10                   # needs wrk (Debian)
    .venv/bin/python bench/edge_workers.py --edge-cpus 0-1 --wrk-cpu 2    # pin, on a machine with cores to spare

Without pinning, the edge's processes and wrk share every core (on a 2-core machine wrk takes a good part of
one). The per-worker split shows how evenly the kernel's shared accept queue spread wrk's connections.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import urllib.request
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import WrkResult, edgefleet, free_port, process, seed_file_origin, wait_http, wrk

TOKEN = "bench-token"


def pinned(argv: list[str], cpus: str | None) -> list[str]:
    return ["taskset", "-c", cpus, *argv] if cpus and shutil.which("taskset") else argv


def worker_split(admin: int) -> list[int]:
    request = urllib.request.Request(f"http://127.0.0.1:{admin}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    return [int(float(v)) for v in re.findall(r'^edgefleet_edge_worker_requests_total\{worker="\d+"\} (\S+)$', text,
                                               re.M)]  # fmt: skip


def run(
    duration: int, connections: int, edge_cpus: str | None, wrk_cpu: int | None
) -> list[tuple[int, WrkResult, list[int]]]:
    results = []
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        work = Path(tmp)
        seed_file_origin(work / "assets", {"bench/10k.bin": b"x" * 10_240})
        origin = free_port()
        stack.enter_context(process(edgefleet("origin", "--listen", f"127.0.0.1:{origin}", "--storage",
                                              f"file://{work / 'assets'}"), work / "origin.log"))  # fmt: skip
        wait_http(f"http://127.0.0.1:{origin}/healthz")
        for workers in (1, 2):
            port, admin = free_port(), free_port()
            argv = edgefleet("edge", "--workers", str(workers), "--listen", f"127.0.0.1:{port}", "--admin-listen",
                             f"127.0.0.1:{admin}", "--origin", f"http://127.0.0.1:{origin}", "--memory", "256Mi",
                             "--disk", "256Mi", "--cache-dir", str(work / f"cache-{workers}"),
                             "--admin-token", TOKEN, "--log-level", "WARNING")  # fmt: skip
            with process(pinned(argv, edge_cpus), work / f"edge-{workers}.log"):
                wait_http(f"http://127.0.0.1:{admin}/readyz")
                url = f"http://127.0.0.1:{port}/assets/bench/10k.bin"
                wait_http(url)  # the first request fills the cache: what follows are hits
                wrk(url, 2, connections, cpu=None)  # warm-up: every worker copies the object into its memory
                before = worker_split(admin)
                result = wrk(url, duration, connections, cpu=wrk_cpu)
                after = worker_split(admin)
                results.append((workers, result, [a - b for a, b in zip(after, before, strict=True)]))
    return results


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--edge-cpus", default=None, help="taskset CPU list for the edge (and its workers)")
    parser.add_argument("--wrk-cpu", type=int, default=None, help="one CPU for wrk")
    args = parser.parse_args()
    results = run(args.duration, args.connections, args.edge_cpus, args.wrk_cpu)
    base = results[0][1].requests_per_second
    print(f"{'workers':<8}{'req/s':>10}{'vs 1':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}  requests per worker")
    for workers, r, split in results:
        print(f"{workers:<8}{r.requests_per_second:>10.0f}{r.requests_per_second / base:>8.2f}{r.p50_ms:>9.2f}"
              f"{r.p99_ms:>9.2f}{r.errors:>8}  {split}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
