"""The disk tier workers share (sqlite index + body files) and the per-worker store over it, no sockets.

Two ``SharedStore`` objects on one cache directory stand for two worker processes: each opens its own
sqlite connection, exactly as the processes do.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from edgefleet_edge.purging import apply_purge
from edgefleet_edge.shared_disk import SharedDiskIndex
from edgefleet_edge.shared_store import SharedStore
from edgefleet_edge.store import Entry

from edgefleet.bus import PurgeMessage

MECHANICS = "s3fifo"
"""Tests of storage mechanics use a policy without size-aware admission (these objects are all "large")."""


def entry(path: str, size: int = 100, tags: tuple[str, ...] = (), query: str = "") -> Entry:
    key = f"{path}?{query}" if query else path
    return Entry(key=key, variant="", path=path, status=200, headers=[("Content-Type", "image/jpeg")], size=size,
                 request_time=0, response_time=0, initial_age=0, lifetime=60, stale_while_revalidate=0,
                 stale_if_error=0, must_revalidate=False, vary=(), surrogate_keys=tags)  # fmt: skip


def body(size: int, fill: bytes = b"x") -> bytes:
    return fill * size


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[SharedStore, SharedStore]]:
    indexes = [SharedDiskIndex(tmp_path, 10_000, MECHANICS) for _ in range(2)]
    indexes[0].recover()
    yield SharedStore(4_000, indexes[0], MECHANICS), SharedStore(4_000, indexes[1], MECHANICS)
    for index in indexes:
        index.close()


def lookup(store: SharedStore, key: str) -> Entry | None:
    for candidate in store.variants(key):
        found = store.get(candidate.id)
        if found is not None:
            return found
    return None


def test_object_stored_by_one_worker_is_a_disk_hit_for_the_other_then_a_memory_hit(
    workers: tuple[SharedStore, SharedStore],
) -> None:
    a, b = workers
    assert a.put(entry("/a.jpg"), body=body(100, b"a"))
    found = lookup(b, "/a.jpg")
    assert found is not None and b.read_body(found) == body(100, b"a")
    assert b.disk_hits == 1 and found.tier == "memory"
    assert lookup(b, "/a.jpg") is not None
    assert b.disk_hits == 1  # the second hit came from b's own memory


def test_disk_limit_counts_every_workers_objects(workers: tuple[SharedStore, SharedStore]) -> None:
    a, b = workers
    for i in range(30):
        (a if i % 2 else b).put(entry(f"/{i}.jpg", size=1_000), body=body(1_000))
    used, objects, evictions = a.index.stats()
    assert used <= 10_000 and objects == 10 and evictions == 20
    files = list((a.index.objects).iterdir())
    assert len(files) == 10 and sum(f.stat().st_size for f in files) == used


def test_objects_read_since_they_were_stored_outlive_ones_never_read(tmp_path: Path) -> None:
    index = SharedDiskIndex(tmp_path, 3_000, MECHANICS)
    store = SharedStore(0, index, MECHANICS)  # no memory: every hit reads the disk and sets its reference bit
    for name in ("/old-hot.jpg", "/old-cold.jpg", "/new.jpg"):
        store.put(entry(name, size=1_000), body=body(1_000))
    assert lookup(store, "/old-hot.jpg") is not None
    store.put(entry("/newest.jpg", size=1_000), body=body(1_000))
    assert lookup(store, "/old-hot.jpg") is not None
    assert lookup(store, "/old-cold.jpg") is None
    index.close()


def test_replacing_an_object_leaves_one_body_file(workers: tuple[SharedStore, SharedStore]) -> None:
    a, b = workers
    a.put(entry("/r.jpg"), body=body(100, b"1"))
    b.put(entry("/r.jpg", size=50), body=body(50, b"2"))
    found = a.index.get(entry("/r.jpg").id)  # a's memory keeps its own (older, still valid) copy
    assert found is not None and found[1] == body(50, b"2")
    assert len(list(a.index.objects.iterdir())) == 1


def test_index_survives_a_restart_and_recovery_drops_torn_writes(tmp_path: Path) -> None:
    index = SharedDiskIndex(tmp_path, 10_000, MECHANICS)
    store = SharedStore(0, index, MECHANICS)
    store.put(entry("/keep.jpg"), body=body(100))
    store.put(entry("/torn.jpg"), body=body(100))
    index.close()
    torn = next(p for p in (tmp_path / "objects").iterdir() if p.name.startswith(entry("/torn.jpg").id))
    torn.write_bytes(b"short")  # a body that is not what its row says
    (tmp_path / "objects" / ".incoming-crashed").write_bytes(b"half a body")
    (tmp_path / "objects" / "0123.body").write_bytes(b"renamed but never committed")

    reopened = SharedDiskIndex(tmp_path, 10_000, MECHANICS)
    assert reopened.recover() == 1
    store = SharedStore(0, reopened, MECHANICS)
    assert lookup(store, "/keep.jpg") is not None
    assert lookup(store, "/torn.jpg") is None
    names = [p.name for p in (tmp_path / "objects").iterdir()]
    assert len(names) == 1 and names[0].startswith(entry("/keep.jpg").id)
    assert reopened.stats()[:2] == (100, 1)
    reopened.close()


def test_recovery_enforces_a_lowered_limit(tmp_path: Path) -> None:
    index = SharedDiskIndex(tmp_path, 10_000, MECHANICS)
    store = SharedStore(0, index, MECHANICS)
    for i in range(5):
        store.put(entry(f"/{i}.jpg", size=1_000), body=body(1_000))
    index.close()
    smaller = SharedDiskIndex(tmp_path, 2_500, MECHANICS)
    assert smaller.recover() == 2
    assert smaller.stats()[0] == 2_000
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
    workers: tuple[SharedStore, SharedStore], message: PurgeMessage, purged: set[str], soft: bool
) -> None:
    a, b = workers
    b.put(entry("/a.jpg", tags=("sku-1",), query="w=1"), body=body(100))
    b.put(entry("/a.jpg", tags=("sku-1",), query="w=2"), body=body(100))
    b.put(entry("/b.jpg", tags=("sku-1", "b")), body=body(100))
    b.put(entry("/sale/s.jpg", tags=("sale",)), body=body(100))
    apply_purge(a, message.model_copy(update={"soft": soft}))
    for key in ("/a.jpg?w=1", "/a.jpg?w=2", "/b.jpg", "/sale/s.jpg"):
        found = next(iter(a.index.variants(key)), None)
        if key not in purged:
            assert found is not None and not found.stale, key
        elif soft:
            assert found is not None and found.stale, key
        else:
            assert found is None, key


def test_invalidation_is_reported_and_other_workers_forget_their_copies(tmp_path: Path) -> None:
    told: list[str] = []
    index_a, index_b = SharedDiskIndex(tmp_path, 10_000, MECHANICS), SharedDiskIndex(tmp_path, 10_000, MECHANICS)
    a = SharedStore(4_000, index_a, MECHANICS, on_invalidate=told.append)
    b = SharedStore(4_000, index_b, MECHANICS)
    a.put(entry("/cart", size=10), body=body(10))
    assert lookup(b, "/cart") is not None  # b now holds a copy in its memory
    a.remove_key("/cart")
    assert told == ["/cart"]
    assert next(iter(index_b.variants("/cart")), None) is None
    assert b.forget_key("/cart") == 1
    assert lookup(b, "/cart") is None
    index_a.close()
    index_b.close()


def test_memory_eviction_keeps_the_shared_copy(workers: tuple[SharedStore, SharedStore]) -> None:
    a, _ = workers
    for i in range(20):
        a.put(entry(f"/{i}.jpg", size=400), body=body(400))
    assert a.memory.used <= 4_000 and a.stats.evictions["memory"] > 0
    assert all(lookup(a, f"/{i}.jpg") is not None for i in range(20))
    assert a.index.stats()[1] == 20


def test_large_object_is_stored_on_its_second_request_whichever_worker_sees_it(tmp_path: Path) -> None:
    index_a, index_b = SharedDiskIndex(tmp_path, 10_000_000), SharedDiskIndex(tmp_path, 10_000_000)
    a, b = SharedStore(1_000_000, index_a), SharedStore(1_000_000, index_b)  # the default, size-aware policy
    assert index_a.large is not None and index_a.large < 50_000
    assert not a.put(entry("/big.jpg", size=50_000), body=body(50_000))  # first request: a ghost, not stored
    assert a.stats.declined["disk"] == 1
    assert b.put(entry("/big.jpg", size=50_000), body=body(50_000))  # second, through the other worker
    assert next(iter(index_a.variants("/big.jpg")), None) is not None
    assert a.put(entry("/small.jpg", size=100), body=body(100))  # small objects are stored at once
    index_a.close()
    index_b.close()
