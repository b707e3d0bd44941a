"""Image variants made once: a local cache directory, one generation per variant at a time, and the
process pool the CPU work runs in.

Layout: ``<dir>/<h[:2]>/<h>/<variant>.<ext>`` where ``h`` hashes the object key, so every variant of an
object (any version) can be dropped with one directory removal when the object changes. A variant's
name hashes the key, the source's ETag, width, format and encoder version: a new source version never
reuses an old variant, even before the old ones are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import multiprocessing
import os
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from edgefleet_origin.errors import UnprocessableImage
from edgefleet_origin.imaging import QUALITY_VERSION, ImageRejected, render_variant
from edgefleet_origin.metrics import OriginMetrics
from edgefleet_origin.objects import ObjectInfo
from edgefleet_origin.variants import VariantSpec, variant_key

log = logging.getLogger(__name__)

# Fetches an object's original into the given path (used when storage has no local path).
SourceFetcher = Callable[[ObjectInfo, Path], Awaitable[None]]


def image_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes for image work. ``spawn`` because the parent runs threads (storage I/O) and
    forking a threaded process can copy a held lock into the child."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


@dataclass(frozen=True)
class CachedVariant:
    path: Path
    size: int


class VariantCache:
    def __init__(self, directory: Path, executor: Executor, max_pixels: int, metrics: OriginMetrics) -> None:
        self.directory = directory
        self._executor = executor
        self._max_pixels = max_pixels
        self._metrics = metrics
        self._inflight: dict[str, asyncio.Future[CachedVariant]] = {}

    def _object_dir(self, key: str) -> Path:
        digest = hashlib.sha256(key.encode()).hexdigest()
        return self.directory / digest[:2] / digest

    def path_for(self, info: ObjectInfo, spec: VariantSpec) -> Path:
        name = variant_key(info.key, info.etag, spec, QUALITY_VERSION)
        return self._object_dir(info.key) / f"{name}.{spec.format.value}"

    async def get(
        self, info: ObjectInfo, spec: VariantSpec, local_source: Path | None, fetch: SourceFetcher
    ) -> CachedVariant:
        """The variant's file, made now if no earlier request made it. Concurrent requests for the
        same variant share one generation."""
        target = self.path_for(info, spec)
        with contextlib.suppress(FileNotFoundError):
            return CachedVariant(target, target.stat().st_size)
        name = target.name
        pending = self._inflight.get(name)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[CachedVariant] = asyncio.get_running_loop().create_future()
        self._inflight[name] = future
        try:
            made = await self._make(info, spec, target, local_source, fetch)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters (if any) re-raise it themselves
            raise
        finally:
            del self._inflight[name]
        future.set_result(made)
        return made

    async def _make(
        self, info: ObjectInfo, spec: VariantSpec, target: Path, local_source: Path | None, fetch: SourceFetcher
    ) -> CachedVariant:
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = target.parent / f".{uuid.uuid4().hex}"
        source = local_source
        if source is None:
            source = scratch.with_suffix(".source")
            await fetch(info, source)
        output = scratch.with_suffix("." + spec.format.value)
        started = time.perf_counter()
        try:
            loop = asyncio.get_running_loop()
            rendered = await loop.run_in_executor(
                self._executor, render_variant, str(source), str(output), spec.width, spec.format, self._max_pixels
            )
            os.replace(output, target)
        except ImageRejected as exc:
            raise UnprocessableImage(f"{info.key}: {exc.reason}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                output.unlink()
            if local_source is None:
                with contextlib.suppress(FileNotFoundError):
                    source.unlink()
        label = spec.format.value
        self._metrics.variant_generations.labels(format=label).inc()
        self._metrics.variant_duration.labels(format=label).observe(time.perf_counter() - started)
        log.debug("Generated %s variant %s of %s", label, spec.tag(), info.key)
        return CachedVariant(target, rendered.size)

    async def forget(self, key: str) -> None:
        """Drop every cached variant of ``key`` (it was replaced or deleted)."""
        await asyncio.to_thread(shutil.rmtree, self._object_dir(key), True)
