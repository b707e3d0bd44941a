"""The disk tier under the store, no sockets: one sqlite index and body files, for one worker or many.

Two ``Store`` objects on one cache directory stand for two worker processes: each opens its own sqlite connection,
exactly as the processes do. Capacities leave room for the index, which counts against ``--disk`` too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from edgefleet_edge.disk_tier import INDEX_SLACK
from edgefleet_edge.purging import apply_purge
from edgefleet_edge.store import Entry, Store

from edgefleet.bus import PurgeMessage

MECHANICS = "s3fifo"
"""Tests of storage mechanics use a policy without size-aware admission."""
KB = 1_000
ROOM = INDEX_SLACK + 500 * KB
"""Index slack plus what the index files take at these sizes (its WAL grows to 128 KiB, its shm is 32 KiB), with
room to spare."""


def entry(path: str, size: int = 100, tags: tuple[str, ...] = (), query: str = "") -> Entry:
    key = f"{path}?{query}" if query else path
    return Entry(key=key, variant="", path=path, status=200, headers=[("Content-Type", "image/jpeg")], size=size,
                 request_time=0, response_time=0, initial_age=0, lifetime=60, stale_while_revalidate=0,
                 stale_if_error=0, must_revalidate=False, vary=(), surrogate_keys=tags)  # fmt: skip


def lookup(store: Store, key: str) -> Entry | None:
    for candidate in store.variants(key):
        found = store.get(candidate.id)
        if found is not None:
            return found
    return None


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    a = Store(4 * KB, ROOM + 10 * KB, tmp_path, MECHANICS)
    a.load_disk()
    b = Store(4 * KB, ROOM + 10 * KB, tmp_path, MECHANICS)
    yield a, b
    a.close()
    b.close()


def test_object_stored_by_one_worker_is_a_disk_hit_for_the_other_then_a_memory_hit(
    workers: tuple[Store, Store],
) -> None:
    a, b = workers
    assert a.put(entry("/a.jpg"), body=b"a" * 100)
    found = lookup(b, "/a.jpg")
    assert found is not None and b.read_body(found) == b"a" * 100
    assert b.disk_hits == 1 and found.tier == "memory"
    assert lookup(b, "/a.jpg") is not None
    assert b.disk_hits == 1, "the second hit came from b's own memory"


def test_disk_limit_counts_every_workers_objects_and_the_index(tmp_path: Path) -> None:
    capacity = ROOM + 100 * KB
    a, b = Store(0, capacity, tmp_path, MECHANICS), Store(0, capacity, tmp_path, MECHANICS)
    for i in range(300):
        (a if i % 2 else b).put(entry(f"/{i}.jpg", size=10 * KB), body=b"x" * 10 * KB)
    assert a.disk is not None
    used, objects, evictions = a.disk.stats()
    files = list(a.disk.objects.iterdir())
    assert len(files) == objects and sum(f.stat().st_size for f in files) == used
    assert used + a.disk.index_bytes() <= capacity
    assert objects + evictions == 300 and evictions > 0
    a.close()
    b.close()


def test_replacing_an_object_leaves_one_body_file(workers: tuple[Store, Store]) -> None:
    a, b = workers
    a.put(entry("/r.jpg"), body=b"1" * 100)
    b.put(entry("/r.jpg", size=50), body=b"2" * 50)
    assert a.disk is not None
    (on_disk,) = a.disk.variants("/r.jpg")
    assert a.disk.body_path(on_disk).read_bytes() == b"2" * 50
    assert len(list(a.disk.objects.iterdir())) == 1


def test_index_survives_a_restart_and_recovery_drops_torn_writes(tmp_path: Path) -> None:
    store = Store(0, ROOM + 10 * KB, tmp_path, MECHANICS)
    store.put(entry("/keep.jpg"), body=b"k" * 100)
    store.put(entry("/torn.jpg"), body=b"t" * 100)
    assert store.disk is not None
    torn = store.disk.body_path(next(store.variants("/torn.jpg")))
    store.close()
    torn.write_bytes(b"short")  # a body that is not what its row says
    (tmp_path / "objects" / ".incoming-crashed").write_bytes(b"half a body")
    (tmp_path / "objects" / "0123.body").write_bytes(b"renamed but never committed")
    reopened = Store(0, ROOM + 10 * KB, tmp_path, MECHANICS)
    assert reopened.load_disk() == 1
    assert lookup(reopened, "/keep.jpg") is not None
    assert lookup(reopened, "/torn.jpg") is None
    names = [p.name for p in (tmp_path / "objects").iterdir()]
    assert len(names) == 1 and names[0].startswith(entry("/keep.jpg").id)
    assert reopened.tier_stats()["disk"][:2] == (100, 1)
    reopened.close()


def test_recovery_enforces_a_lowered_limit(tmp_path: Path) -> None:
    store = Store(0, ROOM + 100 * KB, tmp_path, MECHANICS)
    for i in range(5):
        store.put(entry(f"/{i}.jpg", size=10 * KB), body=b"x" * 10 * KB)
    store.close()
    index = (tmp_path / "index.sqlite").stat().st_size + 32 * 1024  # and its shm, once reopened
    lowered = index + INDEX_SLACK + 30 * KB  # room for two of the five objects, or one next to a fresh WAL
    smaller = Store(0, lowered, tmp_path, MECHANICS)
    smaller.load_disk()
    assert smaller.disk is not None
    used, objects, _ = smaller.disk.stats()
    assert used + smaller.disk.index_bytes() <= lowered and 0 < objects < 5
    smaller.close()


PURGES = [
    ("path-all-variants", PurgeMessage(purge_id="p", paths=("/a.jpg",)), {"/a.jpg?w=1", "/a.jpg?w=2"}),
    ("prefix", PurgeMessage(purge_id="p", prefixes=("/sale/",)), {"/sale/s.jpg"}),
    ("tag", PurgeMessage(purge_id="p", tags=("sku-1",)), {"/a.jpg?w=1", "/a.jpg?w=2", "/b.jpg"}),
    ("all", PurgeMessage(purge_id="p", all=True), {"/a.jpg?w=1", "/a.jpg?w=2", "/b.jpg", "/sale/s.jpg"}),
]


@pytest.mark.parametrize(("message", "purged"), [(m, p) for _, m, p in PURGES], ids=[i for i, _, _ in PURGES])
@pytest.mark.parametrize("soft", [False, True], ids=["hard", "soft"])
def test_purge_through_one_worker_reaches_the_shared_disk(
    workers: tuple[Store, Store], message: PurgeMessage, purged: set[str], soft: bool
) -> None:
    a, b = workers
    b.put(entry("/a.jpg", tags=("sku-1",), query="w=1"), body=b"x" * 100)
    b.put(entry("/a.jpg", tags=("sku-1",), query="w=2"), body=b"x" * 100)
    b.put(entry("/b.jpg", tags=("sku-1", "b")), body=b"x" * 100)
    b.put(entry("/sale/s.jpg", tags=("sale",)), body=b"x" * 100)
    apply_purge(a, message.model_copy(update={"soft": soft}))
    assert a.disk is not None
    for key in ("/a.jpg?w=1", "/a.jpg?w=2", "/b.jpg", "/sale/s.jpg"):
        found = next(iter(a.disk.variants(key)), None)
        if key not in purged:
            assert found is not None and not found.stale, key
        elif soft:
            assert found is not None and found.stale, key
        else:
            assert found is None, key


def test_invalidation_is_reported_and_other_workers_forget_their_copies(tmp_path: Path) -> None:
    told: list[str] = []
    a = Store(4 * KB, ROOM + 10 * KB, tmp_path, MECHANICS, on_invalidate=told.append)
    b = Store(4 * KB, ROOM + 10 * KB, tmp_path, MECHANICS)
    a.put(entry("/cart", size=10), body=b"c" * 10)
    assert lookup(b, "/cart") is not None  # b now holds a copy in its memory
    a.remove_key("/cart")
    assert told == ["/cart"]
    assert b.disk is not None and b.disk.variants("/cart") == []
    assert b.forget_key("/cart") == 1
    assert lookup(b, "/cart") is None
    a.close()
    b.close()


def test_memory_eviction_keeps_the_disk_copy(workers: tuple[Store, Store]) -> None:
    a, _ = workers
    for i in range(20):
        a.put(entry(f"/{i}.jpg", size=400), body=b"x" * 400)
    assert a.memory.used <= 4 * KB and a.evictions()["memory"] > 0
    assert all(lookup(a, f"/{i}.jpg") is not None for i in range(20))
    assert a.tier_stats()["disk"][1] == 20


def test_large_object_is_stored_on_its_second_request_whichever_worker_sees_it(tmp_path: Path) -> None:
    a, b = Store(1_000_000, 10_000_000, tmp_path), Store(1_000_000, 10_000_000, tmp_path)  # the default policy
    assert not a.put(entry("/big.jpg", size=50_000), body=b"b" * 50_000)  # first request: a ghost, not stored
    assert a.stats.declined["disk"] == 1
    assert b.put(entry("/big.jpg", size=50_000), body=b"b" * 50_000)  # second, through the other worker
    assert lookup(a, "/big.jpg") is not None
    assert a.put(entry("/small.jpg", size=100), body=b"s" * 100)  # small objects are stored at once
    a.close()
    b.close()


def test_hits_served_from_memory_copies_keep_an_object_on_the_disk(tmp_path: Path) -> None:
    """Inclusive tiers: the disk's policy only hears of memory hits through ``flush_hits`` (the data plane calls it
    every second). Without them the hottest object, always a memory hit, would look unused to the disk and be the
    first one evicted there, so it would be gone the moment memory let go of it."""
    store = Store(64 * KB, ROOM + 50 * KB, tmp_path, MECHANICS)
    store.load_disk()
    hot = entry("/hot.jpg", size=5 * KB)
    assert store.put(hot, body=b"h" * 5 * KB)
    for _ in range(3):
        found = lookup(store, "/hot.jpg")
        assert found is not None and found.tier == "memory"
    store.flush_hits()
    for i in range(300):  # cold objects, each requested once: three times what the disk holds
        store.put(entry(f"/cold-{i}.jpg", size=5 * KB), body=b"c" * 5 * KB)
    assert store.disk is not None
    assert store.disk.lookup(hot.id) is not None, "the object shoppers kept hitting was evicted from the disk"
    assert store.disk.lookup(entry("/cold-0.jpg").id) is None, "the disk held everything: the test shows nothing"
    store.close()
