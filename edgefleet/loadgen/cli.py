"""``edgefleet bench``: e-commerce-like load against a URL, with a summary and an optional HTML report."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from edgefleet.flags import duration

from .report import format_summary, html_report, summarise
from .runner import DEFAULT_PLAN, PhasePlan, run_load
from .workload import Catalogue, Phase, Workload

PROFILES: dict[str, tuple[PhasePlan, ...]] = {
    "ecommerce": DEFAULT_PLAN,
    "steady": (PhasePlan(Phase.NORMAL, 1.0),),
    "flash-sale": (PhasePlan(Phase.NORMAL, 0.3), PhasePlan(Phase.FLASH_SALE, 0.7)),
}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="where to send traffic (the balancer), e.g. http://127.0.0.1:8080")
    parser.add_argument("--duration", type=duration, default=30.0, help="how long to run (default 30s)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="ecommerce", help="traffic shape")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (default 16)")
    parser.add_argument("--products", type=int, default=200, help="catalogue size (must match the seeded shop)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (same seed, same requests)")
    parser.add_argument("--report", type=Path, help="write an HTML report with plots here")
    parser.add_argument("--output", choices=["text", "json"], default="text", help="summary format")


def run(args: argparse.Namespace) -> int:
    if args.concurrency < 1 or args.products < 1 or args.duration <= 0:
        print("edgefleet bench: --concurrency, --products and --duration must be positive", file=sys.stderr)
        return 2
    workload = Workload(Catalogue(products=args.products), seed=args.seed)
    result = asyncio.run(
        run_load(args.url, workload, duration=args.duration, concurrency=args.concurrency, plan=PROFILES[args.profile])
    )
    summary = summarise(result)
    if args.output == "json":
        print(json.dumps(summary.as_dict()))
    else:
        print(format_summary(summary))
    if args.report is not None:
        args.report.write_text(html_report(result, title=f"edgefleet bench: {args.url}"))
        print(f"report written to {args.report}", file=sys.stderr)
    return 0 if summary.requests and summary.errors < summary.requests else 1
