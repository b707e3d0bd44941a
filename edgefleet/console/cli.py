"""``edgefleet console``: flags (each with an ``EDGEFLEET_*`` twin; secrets better passed by environment)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from aiohttp import web

from edgefleet.flags import add_flag, duration, host_port, size
from edgefleet.logs import configure_logging

from .settings import ConsoleConfigError, ConsoleSettings, settings_from_args

logger = logging.getLogger(__name__)


def _csv_ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of widths") from exc


def configure(parser: argparse.ArgumentParser) -> None:
    add_flag(parser, "--listen", type=host_port, default=("0.0.0.0", 8082), help="HOST:PORT to serve on")
    add_flag(parser, "--console-token", secret=True, help="the token people sign in with")
    add_flag(parser, "--origin", help="origin base URL (upload API), e.g. http://shop-origin:8081")
    add_flag(parser, "--upload-token", secret=True, help="Bearer token of the origin's upload API")
    add_flag(parser, "--fleet", help="where shoppers' traffic goes (the balancer), e.g. http://shop")
    add_flag(parser, "--redis", secret=True, help="Redis URL of the purge bus (unset: purges disabled)")
    add_flag(parser, "--redis-password", secret=True, help="password for the purge bus Redis")
    add_flag(parser, "--cluster", default="default", help="cluster name on the purge bus")
    add_flag(parser, "--admin-token", secret=True, help="Bearer token for the edges' admin /metrics")
    add_flag(parser, "--state-dir", type=Path, help="a local fleet's state directory (edgefleet up)")
    add_flag(parser, "--edges-dns", help="Kubernetes: the headless edge Service's DNS name")
    add_flag(parser, "--edge-admin-port", type=int, default=9090, help="the edges' admin port")
    add_flag(parser, "--prometheus-url", help="Prometheus for the charts (unset: sample the edges directly)")
    add_flag(
        parser, "--prometheus-step", type=duration, default=15.0, help="seconds between chart points from Prometheus"
    )
    add_flag(parser, "--widths", type=_csv_ints, default=(320, 640, 1280), help="the origin's image widths")
    add_flag(parser, "--formats", type=lambda t: tuple(t.split(",")), default=("avif", "webp", "jpeg"),
             help="the origin's image formats")  # fmt: skip
    add_flag(parser, "--max-upload-size", type=size, default=100 * 1024 * 1024, help="largest upload (e.g. 100Mi)")
    add_flag(parser, "--sample-interval", type=duration, default=5.0, help="how often to sample the edges")
    parser.add_argument("--secure-cookies", action="store_true", help="mark cookies Secure (HTTPS in front)")
    add_flag(parser, "--log-format", choices=("text", "json"), default="text", help="log format")


async def serve(settings: ConsoleSettings) -> None:
    from .app import build_app, build_console

    runner = web.AppRunner(build_app(build_console(settings)))
    await runner.setup()
    host, port = settings.listen
    site = web.TCPSite(runner, host, port)
    await site.start()
    logger.info("Console listening on http://%s:%d", host, port)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def run(args: argparse.Namespace) -> int:
    configure_logging(args.log_format)
    try:
        settings = settings_from_args(args)
    except ConsoleConfigError as exc:
        logger.error("Invalid configuration: %s", exc)
        return 2
    asyncio.run(serve(settings))
    return 0
