"""``edgefleet balancer``: HAProxy routes each request to the edge that owns its key; this is its control plane."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from edgefleet.flags import add_flag, host_port
from edgefleet.logs import configure_logging

from .haproxy_config import HAProxyLimits
from .haproxy_process import HAProxyStartError
from .membership import MembershipError
from .runtime_api import RuntimeApiError
from .server import Balancer, BalancerError, BalancerSettings


def parse_edges(text: str) -> tuple[tuple[str, str, str | None], ...]:
    """``URL,URL`` or ``name=URL,name=URL`` (names default to edge-0, edge-1, ...)."""
    edges = []
    for index, item in enumerate(part.strip() for part in text.split(",") if part.strip()):
        name, sep, url = item.partition("=")
        if not sep:
            name, url = f"edge-{index}", item
        if not url.startswith(("http://", "https://")):
            raise argparse.ArgumentTypeError(f"{url!r} is not an http URL")
        edges.append((name, url, None))
    return tuple(edges)


def configure(parser: argparse.ArgumentParser) -> None:
    add_flag(parser, "--listen", type=host_port, default=("0.0.0.0", 8080), help="data port HOST:PORT (HAProxy)")
    add_flag(parser, "--admin-listen", type=host_port, default=("0.0.0.0", 9090), help="admin port HOST:PORT")
    add_flag(parser, "--admin-token", default=None, secret=True, help="bearer token for the admin API")
    add_flag(parser, "--edges", type=parse_edges, default=(), help="static members: URL,URL or name=URL,...")
    add_flag(
        parser, "--kubernetes-service", default=None, help="NAMESPACE/NAME: edges are this Service's ready endpoints"
    )
    add_flag(parser, "--edge-port", type=int, default=8080, help="edges' data port (Kubernetes membership)")
    add_flag(parser, "--edge-admin-port", type=int, default=9090, help="edges' admin port, for health probes")
    add_flag(parser, "--hash-key", default="pathAndQuery", choices=["pathAndQuery", "path"], help="what to hash")
    add_flag(parser, "--load-factor", type=float, default=1.25, help="bounded-load factor c (>= 1)")
    parser.add_argument("--no-x-edge", action="store_true", help="do not add the X-Edge response header")
    add_flag(parser, "--redis", default=None, secret=True, help="Redis URL of the bus (for warm events)")
    add_flag(parser, "--redis-password", default=None, secret=True, help="password for the bus Redis")
    add_flag(parser, "--cluster", default="default", help="cluster name on the bus")
    add_flag(parser, "--name", default="balancer", help="this balancer's name (consumer name for warm events)")
    add_flag(parser, "--haproxy", default="haproxy", help="the HAProxy binary (Debian: /usr/sbin/haproxy)")
    add_flag(parser, "--haproxy-threads", type=int, default=0, help="HAProxy threads (0: one per usable CPU)")
    add_flag(parser, "--max-edges", type=int, default=64, help="server slots in HAProxy: the most edges it routes to")
    add_flag(parser, "--max-connections", type=int, default=4096, help="client connections HAProxy accepts at once")
    add_flag(parser, "--run-dir", type=Path, default=None, help="HAProxy's config and sockets (default: a temp dir)")
    add_flag(parser, "--log-format", default="text", choices=["text", "json"], help="log format")


async def serve(settings: BalancerSettings) -> int:
    balancer = Balancer(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        balancer.begin_stop()  # before HAProxy's exit is seen: the same signal may have reached it too
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        await balancer.start()
    except (BalancerError, HAProxyStartError, MembershipError, RuntimeApiError) as exc:
        print(f"edgefleet balancer: {exc}", file=sys.stderr)
        await balancer.stop()
        return 1
    try:
        await stop.wait()
    finally:
        await balancer.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    configure_logging(args.log_format)
    if args.load_factor < 1.0:
        print("edgefleet balancer: --load-factor must be at least 1")
        return 2
    if args.listen[1] == 0:
        print("edgefleet balancer: --listen needs a port (HAProxy binds it)")
        return 2
    kube_service = None
    if args.kubernetes_service:
        namespace, sep, service = args.kubernetes_service.partition("/")
        if not sep or not namespace or not service:
            print("edgefleet balancer: --kubernetes-service takes NAMESPACE/NAME")
            return 2
        kube_service = (namespace, service)
    settings = BalancerSettings(
        listen=args.listen, admin_listen=args.admin_listen, admin_token=args.admin_token, edges=args.edges,
        hash_key=args.hash_key, load_factor=args.load_factor, x_edge=not args.no_x_edge, redis=args.redis,
        redis_password=args.redis_password,
        cluster=args.cluster, name=args.name, kubernetes_service=kube_service, edge_port=args.edge_port,
        edge_admin_port=args.edge_admin_port, haproxy=args.haproxy, threads=args.haproxy_threads,
        max_edges=args.max_edges, run_dir=args.run_dir, limits=HAProxyLimits(max_connections=args.max_connections),
    )  # fmt: skip
    return asyncio.run(serve(settings))
