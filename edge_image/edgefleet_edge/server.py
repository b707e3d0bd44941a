"""Wiring the edge together: store, proxy, admin port, purge consumer; start and stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

import redis.asyncio as aioredis
from aiohttp import web

from edgefleet.bus import ConsumerMetrics, FileCheckpoint, MemoryCheckpoint, PurgeBus

from .access_log import AccessLog
from .admin import AdminState, admin_app
from .data_plane import DataPlane
from .metrics import EdgeMetrics
from .protocol import HttpToolsServer
from .proxy import CachingProxy
from .purging import BusPurgeApplier, follow_purge_bus
from .settings import EdgeSettings
from .store import Store

__all__ = ["Edge", "EdgeSettings"]

logger = logging.getLogger(__name__)


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
        self.data_plane: DataPlane | None = None
        self._consumer_task: asyncio.Task[None] | None = None
        self._redis: aioredis.Redis | None = None
        self.data_port = 0
        self.admin_port = 0

    @property
    def _proxy(self) -> CachingProxy | None:
        return self.data_plane.proxy if self.data_plane is not None else None

    @property
    def _data_server(self) -> HttpToolsServer | None:
        return self.data_plane.server if self.data_plane is not None else None

    @property
    def access_log(self) -> AccessLog | None:
        return self.data_plane.access_log if self.data_plane is not None else None

    async def start(self) -> None:
        loaded = await asyncio.to_thread(self.store.load_disk)
        if loaded:
            logger.info("Loaded %d cached objects from %s", loaded, self.settings.cache_dir)
        self.data_plane = DataPlane.build(self.settings, self.store, self.metrics)
        self.data_port = await self.data_plane.start(self.settings.listen)
        admin = admin_app(self.admin_token, self.store, self.metrics, self.admin_state)
        self.admin_port = await self._serve(admin, self.settings.admin_listen)
        if self.settings.redis:
            await self._start_bus()
        else:
            self.admin_state.ready = True
        logger.info("Edge %s serving on port %d (admin %d)", self.settings.name, self.data_port, self.admin_port)

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
        if self._consumer_task is not None:
            self._consumer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer_task
        if self.data_plane is not None:
            await self.data_plane.stop()
        for runner in self._runners:
            await runner.cleanup()
        self.store.close()
        if self._redis is not None:
            await self._redis.aclose()
