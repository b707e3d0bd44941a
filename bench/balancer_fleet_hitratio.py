"""Fleet hit ratio with 4 edges: consistent hashing (the balancer's rendezvous owners) vs round-robin.

Each edge is simulated as an LRU cache of the same bytes; the trace is bench/ecommerce_trace.py's e-commerce
trace. With round-robin every edge caches the whole catalogue; with consistent hashing each key lives
on one edge, so the fleet's cache is four times larger.

    .venv/bin/python bench/balancer_fleet_hitratio.py --edges 4 --cache-fraction 0.02
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections import OrderedDict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ecommerce_trace import generate
from edgefleet_balancer.ring import owners


class LRU:
    def __init__(self, capacity: int) -> None:
        self.capacity, self.used = capacity, 0
        self.items: OrderedDict[str, int] = OrderedDict()

    def access(self, key: str, size: int) -> bool:
        if key in self.items:
            self.items.move_to_end(key)
            return True
        if size <= self.capacity:
            while self.used + size > self.capacity:
                _, evicted = self.items.popitem(last=False)
                self.used -= evicted
            self.items[key] = size
            self.used += size
        return False


def simulate(requests: list[tuple[str, int]], edges: int, capacity: int, routing: str) -> tuple[float, float]:
    names = [f"edge-{i}" for i in range(edges)]
    caches = {name: LRU(capacity) for name in names}
    rr = itertools.cycle(names)
    hits = hit_bytes = total_bytes = 0
    for key, size in requests:
        edge = owners(key, names)[0] if routing == "consistent" else next(rr)
        if caches[edge].access(key, size):
            hits += 1
            hit_bytes += size
        total_bytes += size
    return hits / len(requests), hit_bytes / total_bytes


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--edges", type=int, default=4)
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--products", type=int, default=20_000)
    parser.add_argument("--cache-fraction", type=float, default=0.02, help="per-edge cache, of unique bytes")
    args = parser.parse_args()
    requests = [(r.key, r.size) for r in generate(args.requests, args.products, seed=1)]
    unique = sum(dict(requests).values())
    capacity = int(unique * args.cache_fraction)
    print(f"trace: {len(requests)} requests, {len(dict(requests))} objects, {unique / 2**20:.0f} MiB unique")
    print(f"{args.edges} edges, each caching {capacity / 2**20:.1f} MiB ({args.cache_fraction:.0%} of unique bytes)")
    results = {routing: simulate(requests, args.edges, capacity, routing) for routing in ("round-robin", "consistent")}
    for routing, (objects, nbytes) in results.items():
        print(f"  {routing:<12} object hit ratio {objects:.3f}   byte hit ratio {nbytes:.3f}")
    gain = results["consistent"][0] - results["round-robin"][0]
    print(f"consistent hashing: {gain * 100:+.1f} points of object hit ratio over round-robin")
    return 0


if __name__ == "__main__":
    sys.exit(main())
