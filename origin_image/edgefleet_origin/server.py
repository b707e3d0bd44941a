"""Running an origin: build storage, bus, image pool and app from settings; serve until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis.asyncio as aioredis
from aiohttp import web

from edgefleet.bus import PurgeBus
from edgefleet_origin.app import build_app
from edgefleet_origin.change_events import BusNotifier, ChangeNotifier, NoNotifier
from edgefleet_origin.context import OriginContext
from edgefleet_origin.errors import ConfigError
from edgefleet_origin.metrics import OriginMetrics
from edgefleet_origin.outbox import Outbox, OutboxError
from edgefleet_origin.settings import FileLocation, OriginSettings, outbox_path
from edgefleet_origin.storage import Storage
from edgefleet_origin.storage_fs import FileStorage
from edgefleet_origin.storage_s3 import S3Storage
from edgefleet_origin.variant_cache import VariantCache, image_pool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunningOrigin:
    url: str
    context: OriginContext
    admin_url: str = ""
    """Where ``/metrics`` and ``/api`` are served: ``url`` unless ``admin_listen`` is set."""


def make_storage(settings: OriginSettings) -> Storage:
    if isinstance(settings.storage, FileLocation):
        storage = FileStorage(settings.storage.root)
        storage.start()
        return storage
    return S3Storage(settings.storage, settings.variant_cache_dir / ".staging")


def make_notifier(settings: OriginSettings, metrics: OriginMetrics) -> ChangeNotifier:
    if not settings.redis_url:
        log.warning("No --redis given: object changes will not be published to the purge bus")
        return NoNotifier()
    # Bounded timeouts: a bus that does not answer must not hold uploads for long (the object is stored
    # first and its change kept in the outbox; the response says the purge is pending).
    client = aioredis.Redis.from_url(
        settings.redis_url, password=settings.redis_password, socket_connect_timeout=5, socket_timeout=5
    )
    try:
        return BusNotifier(PurgeBus(client, cluster=settings.cluster), Outbox(outbox_path(settings)), metrics)
    except ValueError as exc:
        raise ConfigError(f"--cluster {settings.cluster!r}: {exc}") from exc


@contextlib.asynccontextmanager
async def running_origin(
    settings: OriginSettings, metrics: OriginMetrics | None = None
) -> AsyncIterator[RunningOrigin]:
    """An origin serving on ``settings.listen`` (port 0 picks a free one) until the block ends."""
    metrics = metrics or OriginMetrics()
    async with contextlib.AsyncExitStack() as stack:
        # Each part is closed (in reverse order) even when a later one fails to start.
        storage = make_storage(settings)
        stack.push_async_callback(storage.close)
        notifier = make_notifier(settings, metrics)
        stack.push_async_callback(notifier.close)
        try:
            await notifier.start()
        except OutboxError as exc:
            raise ConfigError(f"--outbox-dir: {exc}") from exc
        variant_cache = VariantCache(
            settings.variant_cache_dir,
            lambda: image_pool(settings.image_workers),
            settings.max_pixels,
            metrics,
            budget_bytes=settings.variant_cache_size,
        )
        stack.push_async_callback(variant_cache.close)
        await asyncio.to_thread(variant_cache.load)
        context = OriginContext(settings, storage, variant_cache, notifier, metrics)
        separate = settings.admin_listen is not None
        url = await _serve(stack, build_app(context, admin=not separate), settings.listen)
        admin_url = url
        if settings.admin_listen is not None:
            admin_url = await _serve(stack, build_app(context, data=False), settings.admin_listen)
        log.info("Started origin on %s (admin %s), storage %s", url, admin_url, storage.description)
        yield RunningOrigin(url, context, admin_url)


async def _serve(stack: contextlib.AsyncExitStack, app: web.Application, listen: tuple[str, int]) -> str:
    runner = web.AppRunner(app, access_log=logging.getLogger("edgefleet_origin.access"))
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    host, port = listen
    await web.TCPSite(runner, host, port).start()
    return f"http://{host if host != '0.0.0.0' else '127.0.0.1'}:{runner.addresses[0][1]}"


async def serve(settings: OriginSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with running_origin(settings):
        await stop.wait()
    log.info("Stopped origin")
