"""``edgefleet operator``: run the kopf operator (current kubeconfig, or the in-cluster account)."""

from __future__ import annotations

import argparse
import asyncio
import logging

import kopf
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from edgefleet.flags import add_flag, duration, host_port
from edgefleet.logs import configure_logging

from . import autoscaling
from .context import OperatorConfig, Runtime, make_runtime
from .handlers import register
from .render import RenderOptions

logger = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--namespace", action="append", default=[], help="watch this namespace (repeatable)")
    scope.add_argument("--all-namespaces", action="store_true", help="watch every namespace (the default)")
    add_flag(parser, "--image", default=RenderOptions.image, help="edgefleet image for the fleets' pods")
    add_flag(parser, "--drift-interval", type=duration, default=600.0,
             help="how often to re-apply each fleet (a safety net: owned objects are watched)")  # fmt: skip
    add_flag(parser, "--metrics-listen", type=host_port, default=("0.0.0.0", 8080), help="/metrics and /healthz")
    add_flag(parser, "--bus-url-override", default=None, secret=True,
             help="reach every fleet's purge bus at this Redis URL (out-of-cluster runs and tests only)")  # fmt: skip
    add_flag(parser, "--log-format", default="text", choices=["text", "json"], help="log format")


async def _serve_metrics(runtime: Runtime, address: tuple[str, int]) -> web.AppRunner:
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(runtime.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, address[0], address[1]).start()
    return runner


async def _main(args: argparse.Namespace) -> int:
    config = OperatorConfig(
        image=args.image,
        drift_interval=args.drift_interval,
        bus_url_override=args.bus_url_override,
        namespaces=tuple(args.namespace),
    )
    runtime = make_runtime(config)
    registry = kopf.OperatorRegistry()
    register(registry, runtime)
    autoscaling.register(registry, runtime)
    metrics = await _serve_metrics(runtime, args.metrics_listen)
    try:
        namespaces = tuple(args.namespace)
        await kopf.operator(
            registry=registry,
            standalone=True,
            clusterwide=not namespaces,
            namespaces=namespaces,
            memo=kopf.Memo(runtime=runtime),
        )
    finally:
        await metrics.cleanup()
        for client in runtime.buses.values():
            await client.aclose()
    return 0


def run(args: argparse.Namespace) -> int:
    configure_logging(args.log_format)
    return asyncio.run(_main(args))
