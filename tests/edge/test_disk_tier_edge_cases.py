"""The disk tier under the store when things go wrong: races between workers, purges while a body is being read,
failed system calls and a busy index. No sockets; two ``Store`` objects on one directory stand for two workers."""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from edgefleet_edge import disk_tier
from edgefleet_edge.body_check import CorruptBody, as_text, checksum
from edgefleet_edge.disk_tier import INDEX_FILE, INDEX_SLACK
from edgefleet_edge.purging import apply_purge
from edgefleet_edge.store import Entry, Store

from edgefleet.bus import PurgeMessage
from tests.edge.test_disk_tier import lookup

KB = 1_000
LARGE = 100 * KB
"""Over the store's inline read (64 KiB) and under an 8 MB memory tier's largest object: such a disk hit streams
from its file, and the memory copy is made when the whole body has been read (``FileBody.on_whole``)."""


def entry(path: str, body: bytes, etag: str = '"1"') -> Entry:
    return Entry(key=path, variant="", path=path, status=200, headers=[("ETag", etag)], size=len(body),
                 request_time=0, response_time=0, initial_age=0, lifetime=3600, stale_while_revalidate=0,
                 stale_if_error=0, must_revalidate=False, vary=(), surrogate_keys=(),
                 checksum=as_text(checksum(body)))  # fmt: skip


def reserved(store: Store) -> int:
    assert store.disk is not None
    (total,) = store.disk._db.execute("SELECT coalesce(sum(bytes), 0) FROM reservations").fetchone()
    return int(total)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    a = Store(8 * 2**20, INDEX_SLACK + 50 * 2**20, tmp_path, "s3fifo")
    a.load_disk()
    b = Store(8 * 2**20, INDEX_SLACK + 50 * 2**20, tmp_path, "s3fifo")
    yield a, b
    a.close()
    b.close()


# ---- memory copies made after a streamed disk hit ------------------------------------------------


def test_memory_copy_made_after_a_soft_purge_is_stale(workers: tuple[Store, Store]) -> None:
    a, b = workers
    body = b"v1" * (LARGE // 2)
    a.put(entry("/p.jpg", body), body=body)
    streaming = lookup(b, "/p.jpg")  # b starts streaming it from its file
    assert streaming is not None and streaming.body is None
    for store in (b, a, b):  # the supervisor's three steps, while b's client is still reading
        apply_purge(store, PurgeMessage(purge_id="p", paths=("/p.jpg",), soft=True))
    b.promote(streaming, body)  # the stream has ended: FileBody.on_whole
    again = lookup(b, "/p.jpg")
    assert again is not None and again.stale


def test_memory_copy_is_not_made_of_a_body_purged_and_refetched_meanwhile(workers: tuple[Store, Store]) -> None:
    a, b = workers
    old, new = b"o" * LARGE, b"n" * LARGE
    a.put(entry("/p.jpg", old), body=old)
    streaming = lookup(b, "/p.jpg")
    assert streaming is not None and streaming.body is None
    for store in (b, a, b):
        apply_purge(store, PurgeMessage(purge_id="p", paths=("/p.jpg",)))
    a.put(entry("/p.jpg", new, etag='"2"'), body=new)  # refetched through a
    b.promote(streaming, old)
    again = lookup(b, "/p.jpg")
    assert again is not None and again.header("ETag") == '"2"' and b.read_body(again) == new


# ---- a body file replaced by another worker -----------------------------------------------------


def test_a_body_file_replaced_by_another_worker_does_not_evict_the_replacement(workers: tuple[Store, Store]) -> None:
    a, b = workers
    old, new = b"o" * LARGE, b"n" * LARGE
    a.put(entry("/r.jpg", old), body=old)
    found = lookup(b, "/r.jpg")
    assert found is not None and found.body is None
    a.put(entry("/r.jpg", new, etag='"2"'), body=new)  # unlinks the file b was about to open
    with pytest.raises(CorruptBody):
        b.read_body(found)
    assert b.stats.corrupt == 0
    again = lookup(b, "/r.jpg")
    assert again is not None and b.read_body(again) == new


# ---- reservations -------------------------------------------------------------------------------


def test_reservation_is_given_back_when_its_temp_file_cannot_be_made(
    workers: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = workers

    def no_file(**_: object) -> tuple[int, str]:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(disk_tier.tempfile, "mkstemp", no_file)
    assert a.reserve_disk(10 * KB) is None
    assert reserved(a) == 0


def test_reservation_released_while_another_worker_writes_is_given_back(
    workers: tuple[Store, Store], tmp_path: Path
) -> None:
    a, b = workers
    reservation = a.reserve_disk(10 * KB)
    assert reservation is not None
    assert a.disk is not None
    a.disk._db.execute("PRAGMA busy_timeout = 10")
    other = sqlite3.connect(tmp_path / INDEX_FILE, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another worker's write transaction, longer than the busy timeout
    a.release(reservation)
    other.execute("COMMIT")
    other.close()
    body = b"x" * 100
    b.put(entry("/other.jpg", body), body=body)  # the index goes on being written
    a.flush_hits()
    a.put(entry("/next.jpg", body), body=body)
    assert reserved(a) == 0


# ---- the index refusing a commit ----------------------------------------------------------------


class _FailingCommit:
    """The sqlite connection, but its next COMMIT fails as SQLITE_FULL does on a full disk: the transaction stays
    open (sqlite's documentation: the application must ROLLBACK)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.fail = True

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        if sql == "COMMIT" and self.fail:
            self.fail = False
            raise sqlite3.OperationalError("database or disk is full")
        return self.db.execute(sql, *args)

    def __getattr__(self, name: str) -> object:
        return getattr(self.db, name)


def test_a_failed_commit_does_not_leave_the_index_locked(workers: tuple[Store, Store]) -> None:
    a, b = workers
    assert a.disk is not None and b.disk is not None
    real = a.disk._db
    a.disk._db = a.disk.policy.db = _FailingCommit(real)  # type: ignore[assignment]
    body = b"x" * 100
    a.put(entry("/full.jpg", body), body=body)  # served unstored: a disk error
    assert not real.in_transaction
    b.disk._db.execute("PRAGMA busy_timeout = 10")
    assert b.disk.put(entry("/next.jpg", body), body=body)  # the other worker can still write
