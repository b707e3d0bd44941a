"""Balancer overhead: wrk against an edge directly vs through the balancer, same cached 10 KB object.

.venv/bin/python bench/balancer_overhead.py --duration 10
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import edgefleet, free_port, process, seed_file_origin, wait_http, wrk


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        work = Path(tmp)
        seed_file_origin(work / "assets", {"bench/10k.bin": b"x" * 10_240})
        origin, edge, edge_admin, bal, bal_admin = (free_port() for _ in range(5))
        stack.enter_context(process(edgefleet("origin", "--listen", f"127.0.0.1:{origin}", "--storage",
                                              f"file://{work / 'assets'}"), work / "origin.log"))  # fmt: skip
        wait_http(f"http://127.0.0.1:{origin}/healthz")
        stack.enter_context(process(edgefleet("edge", "--listen", f"127.0.0.1:{edge}", "--admin-listen",
                                              f"127.0.0.1:{edge_admin}", "--origin", f"http://127.0.0.1:{origin}",
                                              "--name", "edge-0"), work / "edge.log", cpu=0))  # fmt: skip
        wait_http(f"http://127.0.0.1:{edge_admin}/healthz")
        stack.enter_context(process(edgefleet("balancer", "--listen", f"127.0.0.1:{bal}", "--admin-listen",
                                              f"127.0.0.1:{bal_admin}", "--edges", f"edge-0=http://127.0.0.1:{edge}"),
                                    work / "balancer.log", cpu=0))  # fmt: skip
        wait_http(f"http://127.0.0.1:{bal_admin}/healthz")
        path = "/assets/bench/10k.bin"
        wait_http(f"http://127.0.0.1:{edge}{path}")  # fills the cache: every measured request is a hit
        direct = wrk(f"http://127.0.0.1:{edge}{path}", args.duration, args.connections, cpu=1)
        via = wrk(f"http://127.0.0.1:{bal}{path}", args.duration, args.connections, cpu=1)
    print(f"{'path':<26}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for name, result in (("client -> edge", direct), ("client -> balancer -> edge", via)):
        print(f"{name:<26}{result.requests_per_second:>10.0f}{result.p50_ms:>10.2f}{result.p99_ms:>10.2f}"
              f"{result.errors:>8}")  # fmt: skip
    print(f"throughput ratio (via balancer / direct): {via.requests_per_second / direct.requests_per_second:.2f}")
    print(f"p99 ratio (via balancer / direct): {via.p99_ms / direct.p99_ms:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
