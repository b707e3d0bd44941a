"""Wiring the edge together: store, proxy, admin port, purge consumer; start and stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis
from aiohttp import web

from edgefleet.bus import ConsumerMetrics, FileCheckpoint, MemoryCheckpoint, PurgeBus

from .access_log import AccessLog
from .admin import AdminState, admin_app
from .metrics import EdgeMetrics
from .origin_client import OriginPool
from .protocol import HttpToolsServer, Limits
from .proxy import CachingProxy, EdgeConfig
from .purging import BusPurgeApplier, follow_purge_bus
from .store import Store
from .tiers import DEFAULT_POLICY

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EdgeSettings:
    listen: tuple[str, int]
    admin_listen: tuple[str, int]
    origin: str
    memory: int
    disk: int
    cache_dir: Path | None
    name: str
    admin_token: str | None
    redis: str | None = None
    redis_password: str | None = None
    cluster: str = "default"
    grace: float = 3600.0
    allow_set_cookie: bool = False
    max_connections: int = 10_000
    idle_timeout: float = 75.0
    header_timeout: float = 10.0
    access_log: bool = True
    """One JSON line per request on standard output (``access_log.py``)."""
    cache_policy: str = DEFAULT_POLICY
    """Each tier's admission and eviction (``tiers.POLICY_NAMES``); the default was chosen on traces."""


def origin_pool(settings: EdgeSettings) -> OriginPool:
    """The connections the proxy fetches from the origin with (one pool per process)."""
    return OriginPool(settings.origin, limit=256, keepalive=30.0, connect_timeout=5.0, read_timeout=30.0)


class Edge:
    def __init__(self, settings: EdgeSettings) -> None:
        self.settings = settings
        self.store = Store(settings.memory, settings.disk, settings.cache_dir, policy=settings.cache_policy)
        self.metrics = EdgeMetrics(self.store)
        self.admin_state = AdminState()
        token = settings.admin_token
        if not token:
            # Secure by default: no token configured means a random one nobody knows, so the purge
            # endpoint is closed rather than open.
            token = secrets.token_urlsafe(32)
            logger.warning("No --admin-token given: the admin API (purge, metrics) is closed to everyone")
        self.admin_token = token
        self._runners: list[web.AppRunner] = []
        self._data_server: HttpToolsServer | None = None
        self._origin: OriginPool | None = None
        self._proxy: CachingProxy | None = None
        self._consumer_task: asyncio.Task[None] | None = None
        self._redis: aioredis.Redis | None = None
        self._flusher: asyncio.TimerHandle | None = None
        self.data_port = 0
        self.admin_port = 0
        self.access_log: AccessLog | None = None

    async def start(self) -> None:
        loaded = await asyncio.to_thread(self.store.load_disk)
        if loaded:
            logger.info("Loaded %d cached objects from %s", loaded, self.settings.cache_dir)
        self._origin = origin_pool(self.settings)
        self._proxy = CachingProxy(
            EdgeConfig(name=self.settings.name, origin=self.settings.origin, grace=self.settings.grace,
                       allow_set_cookie=self.settings.allow_set_cookie),
            self.store, self.metrics, self._origin,
        )  # fmt: skip
        limits = Limits(
            idle_timeout=self.settings.idle_timeout,
            header_timeout=self.settings.header_timeout,
            max_connections=self.settings.max_connections,
        )
        self.access_log = AccessLog() if self.settings.access_log else None
        self._data_server = HttpToolsServer(self._proxy, limits, self.access_log)
        self.data_port = await self._data_server.start(*self.settings.listen)
        self._flush_metrics()
        admin = admin_app(self.admin_token, self.store, self.metrics, self.admin_state)
        self.admin_port = await self._serve(admin, self.settings.admin_listen)
        if self.settings.redis:
            await self._start_bus()
        else:
            self.admin_state.ready = True
        logger.info("Edge %s serving on port %d (admin %d)", self.settings.name, self.data_port, self.admin_port)

    def _flush_metrics(self) -> None:
        """Fold hot-path tallies into the exported metrics once a second (scrapes also fold them); write the
        access log's buffered lines."""
        self.metrics.flush()
        if self.access_log is not None:
            self.access_log.flush()
        self._flusher = asyncio.get_running_loop().call_later(1.0, self._flush_metrics)

    async def _serve(self, app: web.Application, address: tuple[str, int]) -> int:
        runner = web.AppRunner(
            app, access_log=None, keepalive_timeout=self.settings.idle_timeout, handler_cancellation=True,
            max_line_size=8190, max_field_size=8190,
        )  # fmt: skip
        await runner.setup()
        site = web.TCPSite(runner, address[0], address[1], backlog=1024, reuse_port=True)
        await site.start()
        self._runners.append(runner)
        server = site._server  # the bound port, when 0 was asked for
        assert server is not None
        return int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    async def _start_bus(self) -> None:
        assert self.settings.redis is not None
        self._redis = aioredis.Redis.from_url(self.settings.redis, password=self.settings.redis_password)
        bus = PurgeBus(self._redis, self.settings.cluster)
        cache_dir = self.settings.cache_dir
        checkpoint = FileCheckpoint(cache_dir / "purge.checkpoint") if cache_dir else MemoryCheckpoint()
        consumer = bus.purge_consumer(self.settings.name, checkpoint, metrics=ConsumerMetrics(self.metrics.registry))
        applier = BusPurgeApplier(self.store, self.metrics)
        follow = follow_purge_bus(consumer, applier, self.admin_state)
        self._consumer_task = asyncio.get_running_loop().create_task(follow)

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        self.metrics.flush()
        if self.access_log is not None:
            self.access_log.flush()
        if self._consumer_task is not None:
            self._consumer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer_task
        if self._data_server is not None:
            await self._data_server.stop()
        for runner in self._runners:
            await runner.cleanup()
        if self._proxy is not None:
            await self._proxy.close()
        if self._origin is not None:
            await self._origin.close()
        if self._redis is not None:
            await self._redis.aclose()
