"""The local fleet: origin, edges and balancer as supervised child processes.

The fleet starts components in dependency order (origin, then edges, then the balancer), pushes edge
membership to the balancer whenever it changes, restarts any child that dies (the embedded Redis too: it
comes back on the same port with its append-only file, so the streams and checkpoints still agree), and
scales edges on request.
It never decides *whether* to scale: that is the autoscaler's pure decision function.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import aiohttp

from edgefleet.embedded_redis import EmbeddedRedis, EmbeddedRedisError

from .plan import LocalPlan, balancer_command, edge_command, origin_command
from .processes import ManagedProcess, ProcessStartError, wait_http_ok
from .state import EdgeState, Tokens

logger = logging.getLogger(__name__)

START_TIMEOUT = 60.0


class FleetError(RuntimeError):
    """The fleet could not start or change as asked."""


@dataclass
class EdgeSlot:
    index: int
    name: str
    url: str
    admin_url: str
    process: ManagedProcess
    ready: bool = False


class LocalFleet:
    def __init__(self, plan: LocalPlan, redis_url: str, tokens: Tokens, redis: EmbeddedRedis | None = None) -> None:
        self.plan = plan
        self.redis_url = redis_url
        self.redis = redis
        """The embedded Redis, when the fleet runs one (supervised like the other children)."""
        self.tokens = tokens
        logs = plan.state_dir / "logs"
        env_admin = {"EDGEFLEET_ADMIN_TOKEN": tokens.admin}
        self.origin = ManagedProcess(
            "origin",
            origin_command(plan, redis_url),
            logs / "origin.log",
            env={"EDGEFLEET_UPLOAD_TOKEN": tokens.upload},
        )
        self.balancer = ManagedProcess("balancer", balancer_command(plan, redis_url), logs / "balancer.log", env_admin)
        self.edges: dict[int, EdgeSlot] = {}
        self._admin_headers = {"Authorization": f"Bearer {tokens.admin}"}
        self.restarts = 0

    # ---- addresses -----------------------------------------------------------------------------

    @property
    def origin_url(self) -> str:
        return f"http://127.0.0.1:{self.plan.ports.origin}"

    @property
    def balancer_url(self) -> str:
        return f"http://127.0.0.1:{self.plan.ports.balancer}"

    @property
    def balancer_admin_url(self) -> str:
        return f"http://127.0.0.1:{self.plan.ports.balancer_admin}"

    def edge_states(self) -> list[EdgeState]:
        return [
            EdgeState(
                name=slot.name,
                url=slot.url,
                admin_url=slot.admin_url,
                pid=slot.process.pid,
                state="ready" if slot.ready and slot.process.alive() else "starting",
                restarts=slot.process.restarts,
            )
            for slot in sorted(self.edges.values(), key=lambda s: s.index)
        ]

    # ---- lifecycle -----------------------------------------------------------------------------

    async def start(self, edges: int) -> None:
        self.origin.start()
        await wait_http_ok(self.origin, f"{self.origin_url}/readyz", START_TIMEOUT)
        logger.info("Started origin at %s", self.origin_url)
        await asyncio.gather(*(self._start_edge(i) for i in range(edges)))
        self.balancer.start()
        await wait_http_ok(self.balancer, f"{self.balancer_admin_url}/healthz", START_TIMEOUT)
        await self.push_membership()
        await wait_http_ok(self.balancer, f"{self.balancer_admin_url}/readyz", START_TIMEOUT, self._admin_headers)
        logger.info("Started balancer at %s with %d edges", self.balancer_url, edges)

    async def _start_edge(self, index: int) -> EdgeSlot:
        data, admin = self.plan.ports.edge(index)
        slot = self.edges.get(index)
        if slot is None:
            name = self.plan.edge_name(index)
            slot = EdgeSlot(
                index=index,
                name=name,
                url=f"http://127.0.0.1:{data}",
                admin_url=f"http://127.0.0.1:{admin}",
                process=ManagedProcess(
                    name,
                    edge_command(self.plan, index, self.redis_url),
                    self.plan.state_dir / "logs" / f"{name}.log",
                    env={"EDGEFLEET_ADMIN_TOKEN": self.tokens.admin},
                ),
            )
            self.edges[index] = slot
        slot.ready = False
        slot.process.start()
        # Ready means caught up with the purge bus: only then may it serve.
        await wait_http_ok(slot.process, f"{slot.admin_url}/readyz", START_TIMEOUT, self._admin_headers)
        slot.ready = True
        logger.info("Started edge %s at %s", slot.name, slot.url)
        return slot

    async def push_membership(self) -> None:
        """Tell the balancer which edges exist (it health-checks them itself)."""
        members = [
            {"name": s.name, "url": s.url, "admin_url": s.admin_url}
            for s in sorted(self.edges.values(), key=lambda s: s.index)
        ]
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
            session.put(f"{self.balancer_admin_url}/members", json=members, headers=self._admin_headers) as response,
        ):
            if response.status >= 300:
                body = await response.text()
                raise FleetError(f"balancer refused membership ({response.status}): {body[:200]}")

    @property
    def edge_count(self) -> int:
        return len(self.edges)

    async def scale_to(self, count: int) -> None:
        """Start or stop edges (highest index first) until ``count`` run, then update the balancer."""
        count = max(0, count)
        current = self.edge_count
        if count > current:
            await asyncio.gather(*(self._start_edge(i) for i in range(current, count)))
        elif count < current:
            for index in sorted(self.edges, reverse=True)[: current - count]:
                slot = self.edges.pop(index)
                await asyncio.to_thread(slot.process.stop)
                logger.info("Stopped edge %s", slot.name)
        await self.push_membership()

    async def supervise_once(self) -> list[str]:
        """Restart whatever died; the names restarted."""
        restarted = []
        if self.redis is not None and not self.redis.alive():
            logger.warning("Restarting redis (exited):\n%s", self.redis.log_tail(500))
            try:
                await asyncio.to_thread(self.redis.restart)
            except EmbeddedRedisError as exc:
                logger.error("Redis did not come back: %s", exc)
            else:
                restarted.append("redis")
        for proc, url in ((self.origin, f"{self.origin_url}/readyz"),):
            if not proc.alive():
                logger.warning("Restarting %s (exited):\n%s", proc.name, proc.log_tail(5))
                proc.restarts += 1
                proc.start()
                await wait_http_ok(proc, url, START_TIMEOUT)
                restarted.append(proc.name)
        for slot in list(self.edges.values()):
            if not slot.process.alive():
                logger.warning("Restarting edge %s (exited):\n%s", slot.name, slot.process.log_tail(5))
                slot.process.restarts += 1
                try:
                    await self._start_edge(slot.index)
                except ProcessStartError as exc:
                    logger.error("Edge %s did not come back: %s", slot.name, exc)
                    continue
                restarted.append(slot.name)
        if not self.balancer.alive():
            logger.warning("Restarting balancer (exited):\n%s", self.balancer.log_tail(5))
            self.balancer.restarts += 1
            self.balancer.start()
            await wait_http_ok(self.balancer, f"{self.balancer_admin_url}/healthz", START_TIMEOUT)
            await self.push_membership()
            restarted.append("balancer")
        self.restarts += len(restarted)
        return restarted

    def stop(self) -> None:
        """Stop everything: the balancer first (no new traffic), then the edges together, then the origin."""
        started = time.monotonic()
        self.balancer.stop()
        with ThreadPoolExecutor(max_workers=max(1, len(self.edges))) as pool:
            list(pool.map(lambda slot: slot.process.stop(), self.edges.values()))
        self.origin.stop()
        if self.redis is not None:
            self.redis.stop()
        logger.info("Stopped the fleet in %.1fs", time.monotonic() - started)
