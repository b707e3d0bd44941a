"""``edgefleet edge``: run a caching edge."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import signal
from pathlib import Path

from edgefleet.flags import add_flag, duration, host_port, size
from edgefleet.logs import configure_logging

from .server import Edge, EdgeSettings
from .supervisor import Supervisor
from .tiers import DEFAULT_POLICY, POLICY_NAMES


def configure(parser: argparse.ArgumentParser) -> None:
    add_flag(parser, "--listen", type=host_port, default=("0.0.0.0", 8080), help="data port HOST:PORT")
    add_flag(parser, "--admin-listen", type=host_port, default=("0.0.0.0", 9090), help="admin port HOST:PORT")
    add_flag(parser, "--origin", default=None, help="origin base URL, e.g. http://origin:8081 (required)")
    add_flag(parser, "--memory", type=size, default=256 * 2**20, help="memory tier size (e.g. 256Mi)")
    add_flag(parser, "--disk", type=size, default=0, help="disk tier size (e.g. 1Gi; needs --cache-dir)")
    add_flag(parser, "--cache-dir", type=Path, default=None, help="disk tier and purge checkpoint directory")
    add_flag(parser, "--cache-policy", type=cache_policy, default=DEFAULT_POLICY, choices=POLICY_NAMES,
             help="admission and eviction in each tier (see bench/README.md, Cache policy)")  # fmt: skip
    add_flag(parser, "--redis", default=None, secret=True, help="Redis URL of the purge bus")
    add_flag(parser, "--redis-password", default=None, secret=True, help="password for the purge bus Redis")
    add_flag(parser, "--cluster", default="default", help="cluster name on the purge bus")
    add_flag(parser, "--name", default="edge", help="this edge's name (the pod name in Kubernetes)")
    add_flag(parser, "--admin-token", default=None, secret=True, help="bearer token for the admin API")
    add_flag(parser, "--grace", type=duration, default=3600.0, help="serve stale this long when the origin fails")
    parser.add_argument("--allow-set-cookie", action="store_true", help="cache responses that set cookies")
    add_flag(parser, "--workers", type=int, default=1,
             help="processes sharing the data port and one cache directory; each gets --memory/N")  # fmt: skip
    add_flag(parser, "--access-log", type=on_off, default=True,
             help="one JSON line per request on standard output: on (default) or off")  # fmt: skip
    add_flag(parser, "--log-format", default="text", choices=["text", "json"], help="log format")
    add_flag(parser, "--log-level", default="INFO", help="log level")


def settings_from(args: argparse.Namespace) -> EdgeSettings:
    return EdgeSettings(
        listen=args.listen,
        admin_listen=args.admin_listen,
        origin=args.origin,
        memory=args.memory,
        disk=args.disk if args.cache_dir else 0,
        cache_dir=args.cache_dir,
        name=args.name,
        admin_token=args.admin_token,
        redis=args.redis,
        redis_password=args.redis_password,
        cluster=args.cluster,
        grace=args.grace,
        allow_set_cookie=args.allow_set_cookie,
        cache_policy=args.cache_policy,
        access_log=args.access_log,
    )


def on_off(text: str) -> bool:
    if text.lower() not in ("on", "off", "true", "false"):
        raise argparse.ArgumentTypeError(f"expected on or off, not {text!r}")
    return text.lower() in ("on", "true")


def cache_policy(text: str) -> str:
    if text not in POLICY_NAMES:
        raise argparse.ArgumentTypeError(f"unknown cache policy {text!r}; choose {', '.join(POLICY_NAMES)}")
    return text


async def serve(settings: EdgeSettings, workers: int = 1, log_format: str = "text", log_level: str = "INFO") -> None:
    edge: Edge | Supervisor = Edge(settings) if workers == 1 else Supervisor(settings, workers, log_format, log_level)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await edge.start()
    # Everything allocated by start-up (modules, the loaded index) lives as long as the process: move it out of
    # the collector's generations, so a full collection walks only what requests create (CPython's gc.freeze
    # docs; it shortens the pauses that set the hit path's p99).
    gc.freeze()
    try:
        await stop.wait()
    finally:
        await edge.stop()


def run(args: argparse.Namespace) -> int:
    configure_logging(args.log_format, args.log_level)
    if not args.origin:
        print("edgefleet edge: --origin is required (or EDGEFLEET_ORIGIN)")
        return 2
    if args.workers < 1:
        print("edgefleet edge: --workers must be at least 1")
        return 2
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(serve(settings_from(args), args.workers, args.log_format, args.log_level))
    return 0
