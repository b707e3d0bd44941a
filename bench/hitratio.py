"""Replay a trace through eviction policies at several cache sizes; report object and byte hit ratio.

    .venv/bin/python bench/hitratio.py                       # the default e-commerce trace (bench/ecommerce_trace.py)
    .venv/bin/python bench/hitratio.py --trace FILE --sizes 1%,5% --policies lru,s3fifo,wtinylfu
    .venv/bin/python bench/hitratio.py --seeds 1,2,3 --policies lru,s3fifo,s3fifo-sa   # other generated traces

A trace is CSV ``timestamp,key,size`` (a header line is allowed), so anyone can check the policies on their
own traffic.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ecommerce_trace import generate, read_trace
from edgefleet_edge.policy import POLICIES, make_policy


def replay(requests: list[tuple[str, int]], policy_name: str, capacity: int) -> tuple[float, float]:
    policy = make_policy(policy_name, capacity)
    hits = hit_bytes = total_bytes = 0
    for key, size in requests:
        if policy.access(key, size):
            hits += 1
            hit_bytes += size
        total_bytes += size
        assert policy.used <= policy.capacity
    return hits / len(requests), hit_bytes / total_bytes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trace", help="CSV timestamp,key,size (default: generate the e-commerce trace)")
    parser.add_argument("--sizes", default="1%,5%", help="cache sizes as fractions of the trace's unique bytes")
    parser.add_argument("--policies", default=",".join(POLICIES), help="policies to compare")
    parser.add_argument("--requests", type=int, default=200_000, help="generated trace length")
    parser.add_argument("--seeds", default="1", help="generated traces' seeds, comma-separated (ignored with --trace)")
    args = parser.parse_args()
    if args.trace:
        return report([(r.key, r.size) for r in read_trace(args.trace)], args.sizes, args.policies)
    for seed in args.seeds.split(","):
        print(f"seed {seed.strip()}")
        if status := report(
            [(r.key, r.size) for r in generate(args.requests, 20_000, seed=int(seed))], args.sizes, args.policies
        ):
            return status
    return 0


def report(requests: list[tuple[str, int]], sizes: str, policies: str) -> int:
    if not requests:
        print("hitratio: the trace is empty", file=sys.stderr)
        return 2
    unique = sum(dict(requests).values())
    print(f"trace: {len(requests)} requests, {len(dict(requests))} objects, {unique / 2**20:.1f} MiB unique")
    print(f"{'size':>6} {'policy':<10}{'object hit':>12}{'byte hit':>10}{'vs LRU (objects)':>18}", end="")
    print(f"{'vs S3-FIFO (bytes)':>20}")
    for text in sizes.split(","):
        fraction = float(text.strip().rstrip("%")) / 100
        capacity = max(1, int(unique * fraction))
        results = {name: replay(requests, name, capacity) for name in policies.split(",")}
        baseline = results.get("lru", (0.0, 0.0))[0]
        byte_baseline = results.get("s3fifo", (0.0, 0.0))[1]
        for name, (objects, nbytes) in results.items():
            print(
                f"{text:>6} {name:<10}{objects:>12.4f}{nbytes:>10.4f}{(objects - baseline) * 100:>+17.2f}p"
                f"{(nbytes - byte_baseline) * 100:>+19.2f}p"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
