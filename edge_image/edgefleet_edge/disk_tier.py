"""The disk tier: body files plus one sqlite index (WAL mode), for one worker process or many.

Layout in the cache directory: ``index.sqlite`` (with its ``-wal`` and ``-shm``) and ``objects/<id>-<token>.body``;
bodies in flight are ``objects/.incoming-*``. Every write gets a fresh file name, so two workers replacing the same
object never write into each other's file. Each process opens its own handle; sqlite serialises the writers.

Invariants:
- A row names a body file that is complete: the body is written and renamed into place *before* the row is
  committed. A crash in between leaves a file no row names, which ``recover`` deletes; a torn write is never served.
- Everything the tier writes stays within ``capacity``: the bodies (``totals.used``), the bodies in flight (rows of
  ``reservations``, taken before a stream starts and given back when it ends) and the index files themselves
  (their sizes, measured, plus ``INDEX_SLACK`` for what the next transactions may add). Room is made, by the
  policy's evictions, in the same ``BEGIN IMMEDIATE`` transaction that takes it, so the limit holds for all
  workers together.
- Files of replaced or evicted rows are unlinked after the commit; a reader that opened one first keeps reading it.
- The index carries its format in ``PRAGMA user_version``. A directory written by another version (JSON sidecars
  of the old single-process layout, an older sqlite schema) is discarded at start-up: its files are deleted, never
  served.

Admission and eviction are the ``--cache-policy`` of every other tier, with its state in the index so that all
workers share it (``disk_policy.py``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .disk_policy import POLICY_SCHEMA, PolicyParams, SqlPolicy
from .entry import Entry
from .purge_selector import PurgeSelector
from .tiers import DEFAULT_POLICY

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
"""1 was the first sqlite index (user_version left at 0); 2 added the policy columns and reservations."""
INDEX_FILE = "index.sqlite"
INDEX_FILES = (INDEX_FILE, f"{INDEX_FILE}-wal", f"{INDEX_FILE}-shm")
WAL_PAGES = 32
"""sqlite checkpoints the WAL back into the index at this many pages (and truncates it back to that size)."""
INDEX_SLACK = 256 * 1024
"""Room kept for the index to grow by before it is measured again: a whole WAL (32 pages of at most 4 KiB) and the
pages one transaction adds, twice over."""
BUSY_TIMEOUT_MS = 2_000
"""How long a worker waits for another's write transaction (they last microseconds to milliseconds); the wait
blocks that worker's event loop, so past it a write gives up (the caller serves without the disk)."""
_CHUNK = 500
"""Ids per ``IN (...)`` list, well under sqlite's variable limit."""

SCHEMA = """
CREATE TABLE entries (
    id TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    path TEXT NOT NULL,
    file TEXT NOT NULL,
    size INTEGER NOT NULL,
    stale INTEGER NOT NULL DEFAULT 0,
    meta TEXT NOT NULL,
    small INTEGER NOT NULL DEFAULT 0,
    gen INTEGER NOT NULL DEFAULT 0,
    freq INTEGER NOT NULL DEFAULT 0,
    pushed INTEGER NOT NULL DEFAULT 0,
    priority REAL NOT NULL DEFAULT 0
);
CREATE INDEX entries_key ON entries(key);
CREATE INDEX entries_path ON entries(path);
CREATE INDEX entries_queue ON entries(small, gen);
CREATE INDEX entries_priority ON entries(small, priority, gen);
CREATE TABLE tags (tag TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (tag, id)) WITHOUT ROWID;
CREATE INDEX tags_id ON tags(id);
CREATE TABLE totals (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    used INTEGER NOT NULL,
    objects INTEGER NOT NULL,
    evictions INTEGER NOT NULL
);
INSERT INTO totals VALUES (1, 0, 0, 0);
CREATE TABLE reservations (token TEXT PRIMARY KEY, bytes INTEGER NOT NULL, pid INTEGER NOT NULL);
"""


@dataclass
class Reservation:
    """Disk space held for a body in flight; ``path`` is its temp file."""

    token: str
    size: int
    path: Path


def _meta(entry: Entry) -> str:
    meta = asdict(entry)
    for transient in ("body", "hit_head", "tier", "stale", "disk_file"):
        meta.pop(transient, None)
    return json.dumps(meta, separators=(",", ":"))


def _entry(meta: str, stale: int, file: str) -> Entry:
    fields: dict[str, Any] = json.loads(meta)
    fields["headers"] = [tuple(pair) for pair in fields["headers"]]
    fields["vary"] = tuple(fields["vary"])
    fields["surrogate_keys"] = tuple(fields["surrogate_keys"])
    return Entry(**fields, stale=bool(stale), tier="disk", disk_file=file)


def _chunks(ids: Iterable[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    for entry_id in ids:
        batch.append(entry_id)
        if len(batch) == _CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DiskTier:
    """One process's handle on the disk tier (see the module docstring)."""

    def __init__(self, cache_dir: Path, capacity: int, policy: str = DEFAULT_POLICY) -> None:
        self.cache_dir = cache_dir
        self.objects = cache_dir / "objects"
        self.capacity = capacity
        self.objects.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE for every write), reads are single statements.
        # Any thread: start-up recovery runs in one (``Edge.start``), never alongside the loop's use.
        self._db = sqlite3.connect(cache_dir / INDEX_FILE, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                   check_same_thread=False)  # fmt: skip
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # a cache: losing the last commits to a power cut is fine
        self._db.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")
        self._db.execute(f"PRAGMA journal_size_limit={WAL_PAGES * 4096}")
        self._doomed: list[str] = []
        self._unreleased: list[str] = []
        """Tokens of reservations given back while the index was busy: deleted by this handle's next write."""
        self._migrate()
        self.policy = SqlPolicy(self._db, PolicyParams.of(policy, capacity), self._forget, self._count)
        self.large: int | None = self.policy.p.large

    def close(self) -> None:
        self._db.close()

    def _migrate(self) -> None:
        with self._write():
            (version,) = self._db.execute("PRAGMA user_version").fetchone()
            if version == SCHEMA_VERSION:
                return
            tables = [row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            if tables:
                logger.warning("Discarded the disk tier index in %s: written by another version (format %d, not %d)",
                               self.cache_dir, version, SCHEMA_VERSION)  # fmt: skip
            for table in tables:
                self._db.execute(f'DROP TABLE IF EXISTS "{table}"')
            for statement in (SCHEMA + POLICY_SCHEMA).split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """A write transaction; files of rows it deleted are unlinked once it has committed. It also gives back the
        reservations ``release`` could not (the index was busy then)."""
        self._doomed = []
        self._db.execute("BEGIN IMMEDIATE")
        given_back = list(self._unreleased)
        try:
            if given_back:
                self._db.executemany("DELETE FROM reservations WHERE token = ?", [(token,) for token in given_back])
            yield
            self._db.execute("COMMIT")
        except BaseException:
            # A failed COMMIT (SQLITE_FULL, an I/O error) may leave the transaction open, holding the write lock
            # every worker needs; sqlite may also have rolled it back already.
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            self._doomed = []
            raise
        if given_back:
            self._unreleased = [token for token in self._unreleased if token not in given_back]
        doomed, self._doomed = self._doomed, []
        for name in doomed:
            (self.objects / name).unlink(missing_ok=True)

    def _count(self) -> int:
        (count,) = self._db.execute("SELECT objects FROM totals").fetchone()
        return int(count)

    def _forget(self, entry_id: str) -> None:
        """The policy evicts a row."""
        if self._delete((entry_id,)):
            self._db.execute("UPDATE totals SET evictions = evictions + 1")

    def _delete(self, ids: Iterable[str]) -> int:
        removed = 0
        for batch in _chunks(ids):
            marks = ",".join("?" * len(batch))
            rows = self._db.execute(f"SELECT id, file, size FROM entries WHERE id IN ({marks})", batch).fetchall()
            if not rows:
                continue
            for entry_id, _, _ in rows:
                self.policy.remove(entry_id)
            self._db.execute(f"DELETE FROM entries WHERE id IN ({marks})", batch)
            self._db.execute(f"DELETE FROM tags WHERE id IN ({marks})", batch)
            self._db.execute("UPDATE totals SET used = used - ?, objects = objects - ?",
                             (sum(size for _, _, size in rows), len(rows)))  # fmt: skip
            self._doomed.extend(file for _, file, _ in rows)
            removed += len(rows)
        return removed

    # ---- space ---------------------------------------------------------------------------------

    def index_bytes(self) -> int:
        """The index files' sizes now."""
        total = 0
        for name in INDEX_FILES:
            with contextlib.suppress(FileNotFoundError):
                total += (self.cache_dir / name).stat().st_size
        return total

    def _reserved(self, *, except_token: str = "") -> int:
        total = 0
        for token, size, pid in self._db.execute("SELECT token, bytes, pid FROM reservations").fetchall():
            if pid != os.getpid() and not _alive(pid):
                self._db.execute("DELETE FROM reservations WHERE token = ?", (token,))  # its worker died
                continue
            if token != except_token:
                total += size
        return total

    def _room(self, *, except_token: str = "") -> int:
        """Bytes bodies may use now: the capacity less what is in flight and the index."""
        return self.capacity - self._reserved(except_token=except_token) - self.index_bytes() - INDEX_SLACK

    def _make_room(self, size: int, room: int) -> bool:
        """Evict (by the policy) until ``size`` more bytes fit in ``room``; False if they never can."""
        if size > room:
            return False
        while True:
            (used,) = self._db.execute("SELECT used FROM totals").fetchone()
            if used + size <= room:
                return True
            if self.policy.evict_one() is None:
                return False

    def footprint(self) -> int:
        """Bytes the tier holds on disk by its own account (bodies, bodies in flight, index)."""
        (used,) = self._db.execute("SELECT used FROM totals").fetchone()
        return int(used) + self._reserved() + self.index_bytes()

    # ---- lookup --------------------------------------------------------------------------------

    def variants(self, key: str) -> list[Entry]:
        rows = self._db.execute("SELECT meta, stale, file FROM entries WHERE key = ?", (key,)).fetchall()
        return [_entry(*row) for row in rows]

    def lookup(self, entry_id: str) -> Entry | None:
        row = self._db.execute("SELECT meta, stale, file FROM entries WHERE id = ?", (entry_id,)).fetchone()
        return None if row is None else _entry(*row)

    def contains(self, entry_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM entries WHERE id = ?", (entry_id,)).fetchone() is not None

    def touch_many(self, hits: dict[str, int]) -> None:
        """Hits counted elsewhere (a worker's memory tier), by entry id, in one transaction."""
        with contextlib.suppress(sqlite3.OperationalError), self._write():
            for entry_id, count in hits.items():
                self.policy.touch(entry_id, count)

    def body_path(self, entry: Entry) -> Path:
        return self.objects / entry.disk_file

    # ---- storing -------------------------------------------------------------------------------

    def admits(self, entry_id: str, size: int) -> bool:
        """The policy's admission for an object new to the cache (it may remember that it was asked)."""
        with self._write():
            return self.policy.admits(entry_id, size)

    def reserve(self, size: int) -> Reservation | None:
        """Hold ``size`` bytes (evicting for them) for a body about to stream in; None if they cannot be had."""
        token = secrets.token_hex(8)
        # The file first: a row whose file could not be made (EMFILE, ENOSPC) would hold its bytes until exit.
        fd, tmp = tempfile.mkstemp(dir=self.objects, prefix=".incoming-")
        os.close(fd)
        path = Path(tmp)
        try:
            with self._write():
                if not self._make_room(size, self._room()):
                    path.unlink(missing_ok=True)
                    return None
                self._db.execute("INSERT INTO reservations VALUES (?, ?, ?)", (token, size, os.getpid()))
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return Reservation(token, size, path)

    def grow(self, reservation: Reservation, size: int) -> bool:
        """Hold ``size`` bytes for ``reservation`` (a body longer than expected); False if they cannot be had."""
        if size <= reservation.size:
            return True
        with self._write():
            if not self._make_room(size, self._room(except_token=reservation.token)):
                return False
            self._db.execute("UPDATE reservations SET bytes = ? WHERE token = ?", (size, reservation.token))
        reservation.size = size
        return True

    def release(self, reservation: Reservation) -> None:
        """Give the space back and delete the temp file (the body was abandoned, or moved in by ``put``)."""
        reservation.path.unlink(missing_ok=True)
        self._unreleased.append(reservation.token)
        with contextlib.suppress(sqlite3.Error), self._write():
            pass  # deletes it; if the index is busy, the next write does

    def put(self, entry: Entry, body: bytes | None = None, reservation: Reservation | None = None) -> bool:
        """Store ``entry`` with its body: bytes, or the reservation's finished temp file (moved in, and the space
        it held handed over). False if it cannot fit. Disk errors (``OSError``, ``sqlite3.Error``) propagate."""
        name = f"{entry.id}-{secrets.token_hex(6)}.body"
        target = self.objects / name
        try:
            with self._write():
                if reservation is not None:
                    self._db.execute("DELETE FROM reservations WHERE token = ?", (reservation.token,))
                self._delete((entry.id,))
                if not self._make_room(entry.size, self._room()):
                    return False
                if reservation is not None:
                    os.replace(reservation.path, target)
                else:
                    self._write_file(target, body or b"")
                self._db.execute(
                    "INSERT INTO entries (id, key, path, file, size, stale, meta) VALUES (?,?,?,?,?,?,?)",
                    (entry.id, entry.key, entry.path, name, entry.size, int(entry.stale), _meta(entry)),
                )
                self._db.executemany("INSERT OR IGNORE INTO tags (tag, id) VALUES (?, ?)",
                                     [(tag, entry.id) for tag in entry.surrogate_keys])  # fmt: skip
                self._db.execute("UPDATE totals SET used = used + ?, objects = objects + 1", (entry.size,))
                self.policy.add(entry.id, entry.size)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        finally:
            if reservation is not None:
                reservation.path.unlink(missing_ok=True)  # moved in, or not stored
        entry.disk_file = name
        return True

    def _write_file(self, target: Path, body: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.objects, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(body)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def update_meta(self, entry: Entry) -> None:
        """Rewrite a row's metadata (a 304 refresh) if the row still holds the body this entry was read with."""
        with self._write():
            self._db.execute("UPDATE entries SET meta = ?, stale = ? WHERE id = ? AND file = ?",
                             (_meta(entry), int(entry.stale), entry.id, entry.disk_file))  # fmt: skip

    # ---- removal and purges --------------------------------------------------------------------

    def remove(self, ids: Iterable[str]) -> int:
        with self._write():
            return self._delete(ids)

    def remove_file(self, entry_id: str, file: str) -> bool:
        """Remove the row only if it still names body ``file``; whether it did."""
        with self._write():
            row = self._db.execute("SELECT 1 FROM entries WHERE id = ? AND file = ?", (entry_id, file)).fetchone()
            return row is not None and self._delete((entry_id,)) == 1

    def remove_key(self, key: str) -> int:
        with self._write():
            ids = [row[0] for row in self._db.execute("SELECT id FROM entries WHERE key = ?", (key,))]
            return self._delete(ids)

    def matching(self, selector: PurgeSelector) -> set[str]:
        """The rows ``selector`` names: found through the indexes, each confirmed by ``PurgeSelector.matches``."""
        if selector.everything:
            return {row[0] for row in self._db.execute("SELECT id FROM entries")}
        candidates: set[str] = set()
        for path in selector.paths:
            candidates.update(row[0] for row in self._db.execute("SELECT id FROM entries WHERE path = ?", (path,)))
        for tag in selector.tags:
            candidates.update(row[0] for row in self._db.execute("SELECT id FROM tags WHERE tag = ?", (tag,)))
        for prefix in selector.prefixes:
            query = "SELECT id FROM entries WHERE path >= ? AND substr(path, 1, ?) = ?"
            candidates.update(row[0] for row in self._db.execute(query, (prefix, len(prefix), prefix)))
        named = set()
        for batch in _chunks(candidates):
            marks = ",".join("?" * len(batch))
            query = (f"SELECT e.id, e.path, (SELECT group_concat(tag, char(10)) FROM tags t WHERE t.id = e.id)"
                     f" FROM entries e WHERE e.id IN ({marks})")  # fmt: skip
            for entry_id, path, tags in self._db.execute(query, batch):
                if selector.matches(path, tuple(tags.split("\n")) if tags else ()):
                    named.add(entry_id)
        return named

    def mark_stale(self, ids: Iterable[str]) -> int:
        marked = 0
        with self._write():
            for batch in _chunks(ids):
                marks = ",".join("?" * len(batch))
                marked += self._db.execute(f"UPDATE entries SET stale = 1 WHERE id IN ({marks})", batch).rowcount
        return marked

    # ---- start-up and stats --------------------------------------------------------------------

    def recover(self) -> int:
        """Make the index and the files agree (after a crash, or a directory of another version); rows kept.

        Run once per edge before it serves (by the supervisor before any worker starts). Rows whose body is missing
        or has the wrong size are dropped; files no row names (torn writes, bodies in flight, other versions'
        files) are deleted; reservations of a previous run are given back; a lowered capacity is enforced.
        """
        broken = []
        for entry_id, file, size in self._db.execute("SELECT id, file, size FROM entries").fetchall():
            with contextlib.suppress(FileNotFoundError):
                if (self.objects / file).stat().st_size == size:
                    continue
            broken.append(entry_id)
        with self._write():
            self._db.execute("DELETE FROM reservations")
            self._delete(broken)
            self._make_room(0, self._room())
        kept = {row[0] for row in self._db.execute("SELECT file FROM entries")}
        for path in self.objects.iterdir():
            if path.name not in kept:
                with contextlib.suppress(OSError):
                    path.unlink()
        if broken:
            logger.warning("Dropped %d torn or missing objects from the disk tier", len(broken))
        return len(kept)

    def stats(self) -> tuple[int, int, int]:
        """(bytes used, objects, evictions) for the whole edge."""
        used, count, evictions = self._db.execute("SELECT used, objects, evictions FROM totals").fetchone()
        return int(used), int(count), int(evictions)
