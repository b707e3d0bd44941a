"""The data plane of one edge process: origin pool, caching proxy, data port, access log and the once-a-second flush.

One builder for both ways an edge runs: the single process (``server.Edge``) and each worker of ``--workers N``
(``worker.Worker``); they differ only in the store they pass and in who binds the listening socket.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

from .access_log import AccessLog
from .metrics import EdgeMetrics
from .origin_client import OriginPool
from .protocol import HttpToolsServer, Limits
from .proxy import CachingProxy, EdgeConfig
from .settings import EdgeSettings
from .store import Store

FLUSH_SECONDS = 1.0
"""How often hot-path tallies are folded into the metrics and the access log is written (scrapes also fold)."""


@dataclass
class DataPlane:
    proxy: CachingProxy
    server: HttpToolsServer
    origin: OriginPool
    metrics: EdgeMetrics
    access_log: AccessLog | None
    port: int = 0
    _flusher: asyncio.TimerHandle | None = None

    @classmethod
    def build(cls, settings: EdgeSettings, store: Store, metrics: EdgeMetrics) -> DataPlane:
        origin = OriginPool(settings.origin, limit=256, keepalive=30.0, connect_timeout=5.0, read_timeout=30.0)
        config = EdgeConfig(name=settings.name, origin=settings.origin, grace=settings.grace,
                            allow_set_cookie=settings.allow_set_cookie, warm_token=settings.admin_token)  # fmt: skip
        proxy = CachingProxy(config, store, metrics, origin)
        limits = Limits(idle_timeout=settings.idle_timeout, header_timeout=settings.header_timeout,
                        max_connections=settings.max_connections)  # fmt: skip
        access_log = AccessLog() if settings.access_log else None
        return cls(proxy, HttpToolsServer(proxy, limits, access_log), origin, metrics, access_log)

    async def start(self, address: tuple[str, int] | None = None, sock: socket.socket | None = None) -> int:
        """Serve on ``address`` (bound here) or on ``sock`` (bound by a supervisor); the port it serves."""
        if sock is not None:
            self.port = await self.server.start_on(sock)
        else:
            assert address is not None
            self.port = await self.server.start(*address)
        self.flush()
        return self.port

    def flush(self) -> None:
        """Fold the hot path's tallies into the exported metrics and its memory hits into the disk policy, and write
        the access log's buffered lines; again in ``FLUSH_SECONDS``."""
        self.metrics.flush()
        self.proxy.store.flush_hits()
        if self.access_log is not None:
            self.access_log.flush()
        self._flusher = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        self.metrics.flush()
        if self.access_log is not None:
            self.access_log.flush()
        await self.server.stop()
        await self.proxy.close()
        await self.origin.close()
