"""The store asks admission of the tier of record for new objects only: replacements are always kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from edgefleet_edge.store import Entry, Store


def entry(key: str, size: int) -> Entry:
    return Entry(key=key, variant="", path=key, status=200, headers=[], size=size, request_time=0, response_time=0,
                 initial_age=0, lifetime=60, stale_while_revalidate=0, stale_if_error=0, must_revalidate=False,
                 vary=(), surrogate_keys=())  # fmt: skip


@pytest.mark.parametrize(
    ("memory", "disk", "tier"), [(1_000_000, 0, "memory"), (0, 1_000_000, "disk")], ids=["memory", "disk"]
)
def test_store_declines_a_new_large_object_once_then_stores_it(
    tmp_path: Path, memory: int, disk: int, tier: str
) -> None:
    store = Store(memory, disk, tmp_path if disk else None)
    incoming = store.reserve_disk(50_000) if disk else None
    if incoming is not None:
        incoming.path.write_bytes(b"b" * 50_000)
    assert not store.put(entry("/big", 50_000), body=None if disk else b"b" * 50_000, reservation=incoming)
    assert next(store.variants("/big"), None) is None and store.stats.declined[tier] == 1
    if incoming is not None:
        assert not incoming.path.exists(), "a declined body file is cleaned up"
    assert store.put(entry("/big", 50_000), body=b"b" * 50_000)
    assert next(store.variants("/big")).tier == tier


def test_store_keeps_a_small_object_on_its_first_put() -> None:
    store = Store(1_000_000, 0, None)
    assert store.put(entry("/small", 300), body=b"s" * 300)
    assert store.stats.declined == {"memory": 0, "disk": 0}


def test_store_replacement_of_a_stored_object_skips_admission() -> None:
    store = Store(1_000_000, 0, None)
    store.put(entry("/big", 50_000), body=b"1" * 50_000)
    assert store.put(entry("/big", 50_000), body=b"1" * 50_000)
    assert store.put(entry("/big", 60_000), body=b"2" * 60_000), "a refetched new version is stored at once"
    assert store.read_body(next(store.variants("/big"))) == b"2" * 60_000
    assert store.stats.declined["memory"] == 1


def test_store_writes_through_to_disk_and_memory_evictions_keep_the_disk_copy(tmp_path: Path) -> None:
    store = Store(memory_bytes=100_000, disk_bytes=10_000_000, cache_dir=tmp_path)
    # 2 KB is large for a cold 100 KB memory tier (over 97 bytes) but small for a 10 MB disk tier, which decides.
    for i in range(200):
        assert store.put(entry(f"/o/{i}", 2_000), body=b"x" * 2_000)
    assert store.evictions()["memory"] > 0
    assert store.stats.declined == {"memory": 0, "disk": 0}
    assert store.tier_stats()["disk"][:2] == (400_000, 200), "every object is on disk"
    assert all(next(store.variants(f"/o/{i}"), None) is not None for i in range(200))


@pytest.mark.parametrize("policy", ["s3fifo", "lru"], ids=["s3fifo", "lru"])
def test_store_with_a_baseline_policy_keeps_a_large_object_on_its_first_put(policy: str) -> None:
    store = Store(1_000_000, 0, None, policy=policy)
    assert store.put(entry("/big", 50_000), body=b"b" * 50_000)


def test_store_with_an_unknown_policy_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown cache policy 'arc'; choose s3fifo-gdsf, s3fifo-sa, s3fifo, lru"):
        Store(1_000_000, 0, None, policy="arc")
