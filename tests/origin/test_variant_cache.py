"""The variant cache on its own: real images and real files, executors chosen by the test."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from edgefleet_origin.metrics import OriginMetrics
from edgefleet_origin.objects import ObjectInfo, ObjectMeta
from edgefleet_origin.variant_cache import ImageWorkersFailed, VariantCache
from edgefleet_origin.variants import ImageFormat, VariantSpec
from origin_testkit import jpeg_bytes


class BrokenPool(Executor):
    """Behaves like a process pool whose worker was killed."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_exception(BrokenProcessPool("a worker died"))
        return future


async def no_fetch(info: ObjectInfo, target: Path) -> None:
    raise AssertionError("a local source needs no fetch")


@pytest.fixture
def source(tmp_path: Path) -> tuple[ObjectInfo, Path]:
    path = tmp_path / "shoe.jpg"
    path.write_bytes(jpeg_bytes(800, 600))
    info = ObjectInfo("p/shoe.jpg", path.stat().st_size, "etag1", datetime.now(UTC), ObjectMeta("image/jpeg"))
    return info, path


async def test_dead_image_worker_fails_one_request_and_the_pool_is_replaced(
    tmp_path: Path, source: tuple[ObjectInfo, Path]
) -> None:
    pools: list[Executor] = [BrokenPool(), ThreadPoolExecutor(1)]
    metrics = OriginMetrics()
    cache = VariantCache(tmp_path / "variants", lambda: pools.pop(0), 10_000_000, metrics)
    info, path = source
    spec = VariantSpec(320, ImageFormat.WEBP, negotiated=True)
    with pytest.raises(ImageWorkersFailed):
        await cache.get(info, spec, path, no_fetch)
    made = await cache.get(info, spec, path, no_fetch)
    assert made.path.exists() and made.size > 0
    await cache.close()


async def test_forget_drops_every_variant_of_a_key(tmp_path: Path, source: tuple[ObjectInfo, Path]) -> None:
    cache = VariantCache(tmp_path / "variants", lambda: ThreadPoolExecutor(2), 10_000_000, OriginMetrics())
    info, path = source
    specs = [VariantSpec(w, f, True) for w in (320, 640) for f in (ImageFormat.WEBP, ImageFormat.JPEG)]
    made = await asyncio.gather(*(cache.get(info, spec, path, no_fetch) for spec in specs))
    assert all(m.path.exists() for m in made)
    await cache.forget(info.key)
    assert not any(m.path.exists() for m in made)
    await cache.close()


async def test_cache_stays_under_its_budget_dropping_least_recently_used(
    tmp_path: Path, source: tuple[ObjectInfo, Path]
) -> None:
    info, path = source
    probe = VariantCache(tmp_path / "probe", lambda: ThreadPoolExecutor(1), 10_000_000, OriginMetrics())
    one = (await probe.get(info, VariantSpec(320, ImageFormat.JPEG, False), path, no_fetch)).size
    await probe.close()
    # Room for two 320-wide JPEG variants of the same picture (and a little slack), not three.
    cache = VariantCache(tmp_path / "v", lambda: ThreadPoolExecutor(1), 10_000_000, OriginMetrics(), one * 2 + 10)
    spec = VariantSpec(320, ImageFormat.JPEG, False)
    first = await cache.get(info, spec, path, no_fetch)
    other = ObjectInfo("p/other.jpg", info.size, "etag2", info.last_modified, info.meta)
    third_info = ObjectInfo("p/third.jpg", info.size, "etag3", info.last_modified, info.meta)
    second = await cache.get(other, spec, path, no_fetch)
    await cache.get(info, spec, path, no_fetch)  # a hit: "first" is now the most recently used
    third = await cache.get(third_info, spec, path, no_fetch)
    assert first.path.exists() and third.path.exists()
    assert not second.path.exists()
    await cache.close()


async def test_cache_takes_stock_of_an_earlier_run(tmp_path: Path, source: tuple[ObjectInfo, Path]) -> None:
    info, path = source
    spec = VariantSpec(320, ImageFormat.WEBP, False)
    metrics = OriginMetrics()
    earlier = VariantCache(tmp_path / "v", lambda: ThreadPoolExecutor(1), 10_000_000, metrics)
    made = await earlier.get(info, spec, path, no_fetch)
    await earlier.close()
    leftover = made.path.parent / ".crashed-scratch.webp"
    leftover.write_bytes(b"partial")
    later = VariantCache(tmp_path / "v", lambda: ThreadPoolExecutor(1), 10_000_000, metrics)
    later.load()
    assert not leftover.exists()
    assert (await later.get(info, spec, path, no_fetch)).path == made.path
    assert metrics.registry.get_sample_value("edgefleet_origin_variant_generations_total", {"format": "webp"}) == 1
    await later.close()
