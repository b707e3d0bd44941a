"""Image variants made once: a local cache directory, one generation per variant at a time, and the
process pool the CPU work runs in.

The directory stays under a byte budget (least recently used variants go first, ``disk_budget.py``).
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
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from edgefleet_origin.disk_budget import DiskBudget
from edgefleet_origin.errors import OriginError, UnprocessableImage
from edgefleet_origin.imaging import QUALITY_VERSION, ImageRejected, Rendered, render_variant
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


class ImageWorkersFailed(OriginError):
    status = 503


@dataclass(frozen=True)
class CachedVariant:
    path: Path
    size: int


class VariantCache:
    def __init__(
        self,
        directory: Path,
        executor_factory: Callable[[], Executor],
        max_pixels: int,
        metrics: OriginMetrics,
        budget_bytes: int = 1 << 30,
    ) -> None:
        self.directory = directory
        self._budget = DiskBudget(budget_bytes)
        self._executor_factory = executor_factory
        self._executor = executor_factory()
        self._max_pixels = max_pixels
        self._metrics = metrics
        # One task per variant being made; requests await it shielded, so a client that goes away
        # does not cancel the work other clients (or the next request) are waiting for.
        self._inflight: dict[str, asyncio.Task[CachedVariant]] = {}

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
            hit = CachedVariant(target, target.stat().st_size)
            self._budget.touch(target)
            return hit
        task = self._inflight.get(target.name)
        if task is None:
            task = asyncio.create_task(self._make(info, spec, target, local_source, fetch))
            self._inflight[target.name] = task
            task.add_done_callback(self._finished)
        return await asyncio.shield(task)

    def _finished(self, task: asyncio.Task[CachedVariant]) -> None:
        for name, running in list(self._inflight.items()):
            if running is task:
                del self._inflight[name]
        if not task.cancelled():
            task.exception()  # retrieved: every waiter that is still there re-raises it itself

    async def close(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        await asyncio.gather(*self._inflight.values(), return_exceptions=True)
        await asyncio.to_thread(self._executor.shutdown, True, cancel_futures=True)

    async def _make(
        self, info: ObjectInfo, spec: VariantSpec, target: Path, local_source: Path | None, fetch: SourceFetcher
    ) -> CachedVariant:
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = target.parent / f".{uuid.uuid4().hex}"
        source = local_source or scratch.with_suffix(".source")
        output = scratch.with_suffix("." + spec.format.value)
        started = time.perf_counter()
        try:
            if local_source is None:
                await fetch(info, source)
            rendered = await self._render(source, output, spec)
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
        for evicted in self._budget.add(target, rendered.size):
            with contextlib.suppress(FileNotFoundError):
                evicted.unlink()
        return CachedVariant(target, rendered.size)

    async def _render(self, source: Path, output: Path, spec: VariantSpec) -> Rendered:
        executor = self._executor
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                executor, render_variant, str(source), str(output), spec.width, spec.format, self._max_pixels
            )
        except BrokenExecutor as exc:
            # A worker died (killed for memory, most likely): start a fresh pool for the next request.
            if self._executor is executor:
                log.error("Restarted the image workers after one died: %s", exc)
                self._executor = self._executor_factory()
                executor.shutdown(wait=False, cancel_futures=True)
            raise ImageWorkersFailed("an image worker died while making this variant; try again") from exc

    async def forget(self, key: str) -> None:
        """Drop every cached variant of ``key`` (it was replaced or deleted)."""
        directory = self._object_dir(key)
        self._budget.forget_under(directory)
        await asyncio.to_thread(shutil.rmtree, directory, True)

    def load(self) -> None:
        """Take stock of variants left by an earlier run, oldest use first, and remove scratch files a
        crash left behind (blocking; call once at start-up)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        found: list[tuple[float, Path, int]] = []
        for path in self.directory.glob("*/*/*"):
            if path.name.startswith("."):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                continue
            with contextlib.suppress(FileNotFoundError):
                st = path.stat()
                found.append((st.st_atime, path, st.st_size))
        for _, path, size in sorted(found):
            for evicted in self._budget.add(path, size):
                with contextlib.suppress(FileNotFoundError):
                    evicted.unlink()
        log.info("Found %d cached variants (%d bytes) in %s", len(self._budget), self._budget.used, self.directory)
