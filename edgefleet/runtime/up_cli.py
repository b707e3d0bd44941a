"""``edgefleet up``: run the fleet a CdnCluster describes as processes on this machine."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from pathlib import Path

import yaml
from pydantic import ValidationError

from edgefleet.api import CdnCluster
from edgefleet.embedded_redis import EmbeddedRedis, EmbeddedRedisError
from edgefleet.flags import add_flag
from edgefleet.logs import configure_logging

from .autoscaling import LocalAutoscaler
from .fleet import LocalFleet
from .plan import LocalPlan, console_command, make_plan
from .processes import ManagedProcess, ProcessStartError, wait_http_ok
from .prometheus import LocalPrometheus, prometheus_binary
from .screen import render_status
from .state import RuntimeState, clear_runtime, load_or_create_tokens, write_runtime

logger = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--file", type=Path, required=True, help="CdnCluster manifest")
    add_flag(parser, "--state-dir", type=Path, default=Path(".edgefleet"), help="where state and logs live")
    add_flag(parser, "--port", type=int, default=8080, help="balancer port; other ports follow it")
    add_flag(parser, "--redis", default=None, help="use this Redis instead of an embedded one")
    parser.add_argument("--no-prometheus", action="store_true", help="scrape edges directly even if installed")
    parser.add_argument("--no-screen", action="store_true", help="log lines instead of a live status screen")
    add_flag(parser, "--log-format", default="text", choices=["text", "json"], help="log format")


def load_cluster(path: Path) -> CdnCluster:
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SystemExit(f"edgefleet up: cannot read {path}: {exc}") from exc
    try:
        return CdnCluster.model_validate(document)
    except ValidationError as exc:
        problems = "\n".join(f"  {'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors())
        raise SystemExit(f"edgefleet up: {path} is not a valid CdnCluster:\n{problems}") from exc


class Runtime:
    def __init__(self, plan: LocalPlan, args: argparse.Namespace) -> None:
        self.plan = plan
        self.args = args
        self.tokens = load_or_create_tokens(plan.state_dir)
        self.redis: EmbeddedRedis | None = None
        self.redis_url: str = args.redis or ""
        self.fleet: LocalFleet | None = None
        self.prometheus: LocalPrometheus | None = None
        self.autoscaler: LocalAutoscaler | None = None
        self.console: ManagedProcess | None = None
        self.stopping = asyncio.Event()

    def state(self) -> RuntimeState:
        assert self.fleet is not None
        autoscaler = self.autoscaler
        return RuntimeState(
            pid=os.getpid(),
            cluster=self.plan.cluster,
            redis_url=self.redis_url,
            balancer_url=self.fleet.balancer_url,
            balancer_admin_url=self.fleet.balancer_admin_url,
            origin_url=self.fleet.origin_url,
            prometheus_url=self.prometheus.url if self.prometheus else None,
            edges=self.fleet.edge_states(),
            metrics=autoscaler.last_metrics if autoscaler else {},
            last_decision=autoscaler.last_change if autoscaler else None,
            deviations=[f"{d.field}: {d.message}" for d in self.plan.deviations],
            console_url=self.console_url,
            processes=self._pids(),
            updated_at=time.time(),
        )

    def _pids(self) -> dict[str, int]:
        assert self.fleet is not None
        pids = {e.name: e.pid for e in self.fleet.edge_states() if e.pid}
        for name, process in (("origin", self.fleet.origin), ("balancer", self.fleet.balancer)):
            if process.pid:
                pids[name] = process.pid
        if self.prometheus is not None and self.prometheus.process is not None and self.prometheus.process.pid:
            pids["prometheus"] = self.prometheus.process.pid
        if self.redis is not None and self.redis.pid:
            pids["redis"] = self.redis.pid
        if self.console is not None and self.console.pid:
            pids["console"] = self.console.pid
        return pids

    @property
    def console_url(self) -> str | None:
        return f"http://127.0.0.1:{self.plan.ports.console}" if self.console is not None else None

    async def start_console(self) -> None:
        """The web console (spec.console.enabled); its tokens go by environment, never on the command line."""
        assert self.fleet is not None
        prometheus = self.prometheus.url if self.prometheus else None
        command = console_command(self.plan, self.redis_url, self.fleet.balancer_url, self.fleet.origin_url, prometheus)
        env = {"EDGEFLEET_CONSOLE_TOKEN": self.tokens.console, "EDGEFLEET_UPLOAD_TOKEN": self.tokens.upload,
               "EDGEFLEET_ADMIN_TOKEN": self.tokens.admin}  # fmt: skip
        self.console = ManagedProcess("console", command, self.plan.state_dir / "logs" / "console.log", env)
        self.console.start()
        await wait_http_ok(self.console, f"{self.console_url}/healthz", 60.0)
        logger.info("Started console at %s", self.console_url)

    async def start(self) -> None:
        if not self.redis_url:
            self.redis = EmbeddedRedis(data_dir=self.plan.state_dir / "redis", port=self.plan.ports.redis)
            await asyncio.to_thread(self.redis.start)
            self.redis_url = self.redis.url
        self.fleet = LocalFleet(self.plan, self.redis_url, self.tokens, self.redis)
        await self.fleet.start(self.plan.initial_edges)
        binary = None if self.args.no_prometheus else prometheus_binary()
        if binary is not None:
            self.prometheus = LocalPrometheus(
                binary, self.plan.state_dir, self.plan.ports.prometheus, self.tokens.admin
            )
            await self.prometheus.start(
                f"127.0.0.1:{self.plan.ports.origin}", f"127.0.0.1:{self.plan.ports.balancer_admin}", self._targets()
            )
        self.autoscaler = LocalAutoscaler(self.plan, self.fleet, self.tokens, self.prometheus)
        if self.plan.console_enabled:
            await self.start_console()
        write_runtime(self.plan.state_dir, self.state())

    def _targets(self) -> list[tuple[str, str]]:
        assert self.fleet is not None
        return [(e.name, e.admin_url.removeprefix("http://")) for e in self.fleet.edge_states()]

    async def loop(self, screen: bool) -> None:
        assert self.fleet is not None and self.autoscaler is not None
        next_scale = time.monotonic() + self.plan.autoscale_interval
        last_draw = 0.0
        while not self.stopping.is_set():
            restarted = await self.fleet.supervise_once()
            if self.console is not None and not self.console.alive():
                logger.warning("Restarting console (exited):\n%s", self.console.log_tail(5))
                self.console.restarts += 1
                self.console.start()
            if restarted and self.prometheus is not None:
                self.prometheus.write_targets(self._targets())
            if self.plan.autoscaling_enabled and time.monotonic() >= next_scale:
                next_scale = time.monotonic() + self.plan.autoscale_interval
                if await self.autoscaler.tick() and self.prometheus is not None:
                    self.prometheus.write_targets(self._targets())
            state = self.state()
            write_runtime(self.plan.state_dir, state)
            if time.monotonic() - last_draw >= (1.0 if screen else 15.0):
                last_draw = time.monotonic()
                if screen:
                    sys.stdout.write("\x1b[H\x1b[2J" + render_status(state) + "\n")
                    sys.stdout.flush()
                else:
                    logger.info(
                        "Fleet has %d edges; hit ratio %s; p95 %s ms",
                        len(state.edges),
                        state.metrics.get("hit_ratio"),
                        state.metrics.get("p95_latency_ms"),
                    )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=0.5)

    def stop(self) -> None:
        if self.console is not None:
            self.console.stop()
        if self.fleet is not None:
            self.fleet.stop()
        if self.prometheus is not None:
            self.prometheus.stop()
        if self.redis is not None:
            self.redis.stop()
        clear_runtime(self.plan.state_dir)


async def _main(args: argparse.Namespace) -> int:
    cluster = load_cluster(args.file)
    plan = make_plan(cluster, args.state_dir.resolve(), args.port)
    for deviation in plan.deviations:
        logger.warning("Not applied locally: %s: %s", deviation.field, deviation.message)
    runtime = Runtime(plan, args)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, runtime.stopping.set)
    try:
        await runtime.start()
        assert runtime.fleet is not None
        metrics = runtime.prometheus.url if runtime.prometheus else "scraped directly from the edges"
        console = (
            f'  console        {runtime.console_url}  (token: "console" in {plan.state_dir / "tokens.json"})\n'
            if runtime.console_url
            else ""
        )
        print(
            f"edgefleet is up: {plan.cluster}\n"
            f"  shop traffic   {runtime.fleet.balancer_url}/assets/<key>\n"
            f"  upload         PUT {runtime.fleet.origin_url}/api/files/<key>"
            f"  (Authorization: Bearer {runtime.tokens.upload})\n"
            f"  admin token    {runtime.tokens.admin}\n"
            f"{console}"
            f"  metrics        {metrics}\n"
            f"  state          {plan.state_dir}   (Ctrl-C stops everything)",
            flush=True,
        )
        await runtime.loop(screen=sys.stdout.isatty() and not args.no_screen)
        return 0
    except (ProcessStartError, EmbeddedRedisError) as exc:
        logger.error("Could not start the fleet: %s", exc)
        return 1
    finally:
        await asyncio.to_thread(runtime.stop)


def run(args: argparse.Namespace) -> int:
    configure_logging(args.log_format)
    return asyncio.run(_main(args))
