"""Replay traces through eviction policies at several cache sizes; report object and byte hit ratio.

    .venv/bin/python bench/hitratio.py                                  # e-commerce trace, seed 1
    .venv/bin/python bench/hitratio.py --trace ../shared/traces/cdn-adaptsize-sample.csv --seeds 1,2,3
    .venv/bin/python bench/hitratio.py --trace FILE --sizes 1%,5% --policies default,lru,s3fifo,wtinylfu

A trace is CSV ``timestamp,key,size`` (a header line is allowed), so anyone can check the policies on their
own traffic; ``--trace`` may be given more than once. ``--seeds`` replays generated e-commerce traces
(``bench/ecommerce_trace.py``); without ``--trace`` it defaults to seed 1. ``default`` is whichever policy is
the edge's default (``tiers.DEFAULT_POLICY``), so rows from different versions compare.

Cache sizes are fractions of a trace's unique bytes; every replay starts cold. A key requested with several
sizes (a changed object) stays one object: a request is a hit if the key is stored, counted with the size on
its own line, and the unique bytes count each key at its last size. That is libCacheSim's convention, so the
LRU rows match its LRU exactly (``../shared/traces/README.md``).

``--check`` exits 1 unless ``default`` is at least as good as both ``lru`` and ``s3fifo`` in object and in
byte hit ratio on every row.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ecommerce_trace import generate, read_trace
from edgefleet_edge.policy import POLICIES, make_policy, resolve

BASELINES = ("lru", "s3fifo")
LABELS = {
    "lru": "LRU",
    "s3fifo": "S3-FIFO",
    "s3fifo-sa": "S3-FIFO size-aware",
    "wtinylfu": "W-TinyLFU",
    "gdsf": "GDSF (reference)",
}
Requests = list[tuple[str, int]]


def replay(requests: Requests, policy_name: str, capacity: int) -> tuple[float, float]:
    """Object and byte hit ratio of ``policy_name`` with ``capacity`` bytes, from a cold start."""
    policy = make_policy(policy_name, capacity)
    access = policy.access
    hits = hit_bytes = total_bytes = 0
    for key, size in requests:
        if access(key, size):
            hits += 1
            hit_bytes += size
        total_bytes += size
    assert policy.used <= policy.capacity
    return hits / len(requests), hit_bytes / total_bytes


def label(name: str) -> str:
    if name == "default":
        return f"default ({resolve(name)})"
    return LABELS.get(name, name)


def report(name: str, requests: Requests, sizes: Iterable[str], policies: list[str], markdown: bool) -> list[str]:
    """Print one trace's rows; returns the rows where ``default`` loses to a baseline."""
    last_sizes = dict(requests)
    unique = sum(last_sizes.values())
    print(f"\n{name}: {len(requests):,} requests, {len(last_sizes):,} objects, {unique / 2**20:.1f} MiB unique")
    if markdown:
        print("\n| size | policy | object hit ratio | byte hit ratio |\n|---|---|---:|---:|")
    else:
        print(f"{'size':>6}  {'policy':<28}{'object hit':>11}{'byte hit':>10}")
    losses = []
    for text in sizes:
        fraction = float(text.strip().rstrip("%")) / 100
        capacity = max(1, int(unique * fraction))
        results = {policy: replay(requests, policy, capacity) for policy in policies}
        for policy, (objects, nbytes) in results.items():
            if markdown:
                bold = "**" if policy == "default" else ""
                print(f"| {text} | {bold}{label(policy)}{bold} | {bold}{objects * 100:.1f}{bold} "
                      f"| {bold}{nbytes * 100:.1f}{bold} |")  # fmt: skip
            else:
                print(f"{text:>6}  {label(policy):<28}{objects * 100:>10.1f}%{nbytes * 100:>9.1f}%")
        if "default" in results:
            mine = results["default"]
            for baseline in BASELINES:
                if baseline in results and (mine[0] < results[baseline][0] or mine[1] < results[baseline][1]):
                    losses.append(f"{name} {text}: default {mine} below {baseline} {results[baseline]}")
    return losses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trace", action="append", default=[], help="CSV timestamp,key,size (repeatable)")
    parser.add_argument("--seeds", help="e-commerce traces' seeds, comma-separated (default 1 without --trace)")
    parser.add_argument("--sizes", default="1%,5%,10%", help="cache sizes as fractions of each trace's unique bytes")
    parser.add_argument("--policies", default="default,lru,s3fifo", help=f"any of default, {', '.join(POLICIES)}")
    parser.add_argument("--requests", type=int, default=200_000, help="generated trace length")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument("--check", action="store_true", help="exit 1 if default loses to lru or s3fifo anywhere")
    args = parser.parse_args()
    policies = [name.strip() for name in args.policies.split(",")]
    for name in policies:
        if resolve(name) not in POLICIES:
            parser.error(f"unknown policy {name!r}; choose from default, {', '.join(POLICIES)}")
    seeds = args.seeds if args.seeds is not None else ("" if args.trace else "1")
    traces: list[tuple[str, Requests]] = []
    for seed in filter(None, (text.strip() for text in seeds.split(","))):
        generated = [(r.key, r.size) for r in generate(args.requests, 20_000, seed=int(seed))]
        traces.append((f"e-commerce (bench/ecommerce_trace.py, seed {seed})", generated))
    for path in args.trace:
        traces.append((Path(path).name, [(r.key, r.size) for r in read_trace(path)]))
    losses = []
    for name, requests in traces:
        if not requests:
            print(f"hitratio: {name} is empty", file=sys.stderr)
            return 2
        losses += report(name, requests, args.sizes.split(","), policies, args.markdown)
    if args.check:
        for loss in losses:
            print(f"hitratio: {loss}", file=sys.stderr)
        return 1 if losses else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
