"""The disk tier shared by an edge's worker processes: body files plus one sqlite index (WAL mode).

Layout in the cache directory: ``index.sqlite`` and ``objects/<entry id>-<token>.body``. Every write gets a
fresh file name, so two workers replacing the same object never write into each other's file.

Invariants:
- A row names a body file that is complete: the body is written to a temporary file and renamed into
  place *before* the row is committed. A crash in between leaves an unreferenced file, which ``recover``
  deletes at start-up; a torn write is never served.
- ``totals.used`` is the sum of the rows' sizes and never exceeds the capacity after a commit: insertion
  evicts, in the same ``BEGIN IMMEDIATE`` transaction, so the limit holds for all workers together.
- Files of replaced or evicted rows are unlinked after the commit. A worker that looked a row up just
  before finds the file gone and treats it as a miss.

Eviction is CLOCK (FIFO with reinsertion): a hit sets the row's reference bit; the oldest row with the bit
clear is evicted, a referenced one loses its bit and goes to the back. It is the single-queue relative of
the S3-FIFO the per-process tiers use, and it needs nothing but an ordered index in SQL.
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .store import Entry
from .tiers import DEFAULT_POLICY, make_tier_policy

logger = logging.getLogger(__name__)

INDEX_FILE = "index.sqlite"
BUSY_TIMEOUT_MS = 2_000
"""How long a worker waits for another's write transaction (they last microseconds to milliseconds); the
wait blocks that worker's event loop, so past it a write gives up (the caller serves without the disk)."""
_CHUNK = 500
"""Ids per ``IN (...)`` list, well under sqlite's variable limit."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    path TEXT NOT NULL,
    file TEXT NOT NULL,
    size INTEGER NOT NULL,
    stale INTEGER NOT NULL DEFAULT 0,
    ref INTEGER NOT NULL DEFAULT 0,
    seq INTEGER NOT NULL,
    meta TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_key ON entries(key);
CREATE INDEX IF NOT EXISTS entries_path ON entries(path);
CREATE INDEX IF NOT EXISTS entries_seq ON entries(seq);
CREATE TABLE IF NOT EXISTS tags (
    tag TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (tag, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tags_id ON tags(id);
CREATE TABLE IF NOT EXISTS totals (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    used INTEGER NOT NULL,
    next_seq INTEGER NOT NULL,
    evictions INTEGER NOT NULL
);
INSERT OR IGNORE INTO totals VALUES (1, 0, 0, 0);
CREATE TABLE IF NOT EXISTS ghosts (id TEXT PRIMARY KEY);
"""


@dataclass
class SharedEntry(Entry):
    """An entry read from the shared disk tier; ``body_name`` is the body file it was read with."""

    body_name: str = field(default="", compare=False)


def _meta(entry: Entry) -> str:
    meta = asdict(entry)
    for transient in ("body", "hit_head", "tier", "stale", "body_name"):
        meta.pop(transient, None)
    return json.dumps(meta, separators=(",", ":"))


def _entry(meta: str, stale: int, file: str) -> SharedEntry:
    fields: dict[str, Any] = json.loads(meta)
    fields["headers"] = [tuple(pair) for pair in fields["headers"]]
    fields["vary"] = tuple(fields["vary"])
    fields["surrogate_keys"] = tuple(fields["surrogate_keys"])
    return SharedEntry(**fields, stale=bool(stale), tier="disk", body_name=file)


def _chunks(ids: Iterable[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    for entry_id in ids:
        batch.append(entry_id)
        if len(batch) == _CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


class SharedDiskIndex:
    """One process's handle on the shared disk tier (open one per process; sqlite handles the sharing)."""

    def __init__(self, cache_dir: Path, capacity: int, policy: str = DEFAULT_POLICY) -> None:
        self.cache_dir = cache_dir
        self.objects = cache_dir / "objects"
        self.capacity = capacity
        # The policy's size-aware admission threshold for a tier this size (one definition, in tiers.py).
        self.large: int | None = getattr(make_tier_policy(policy, capacity), "large", None)
        self.objects.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE for every write), reads are single statements.
        self._db = sqlite3.connect(cache_dir / INDEX_FILE, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # a cache: losing the last commits to a power cut is fine
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[list[str]]:
        """A write transaction; yields the list of file names to unlink once it has committed."""
        doomed: list[str] = []
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield doomed
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        for name in doomed:
            (self.objects / name).unlink(missing_ok=True)

    def _delete(self, ids: Iterable[str], doomed: list[str]) -> int:
        removed = 0
        for batch in _chunks(ids):
            marks = ",".join("?" * len(batch))
            rows = self._db.execute(f"SELECT file, size FROM entries WHERE id IN ({marks})", batch).fetchall()
            if not rows:
                continue
            self._db.execute(f"DELETE FROM entries WHERE id IN ({marks})", batch)
            self._db.execute(f"DELETE FROM tags WHERE id IN ({marks})", batch)
            self._db.execute("UPDATE totals SET used = used - ?", (sum(size for _, size in rows),))
            doomed.extend(file for file, _ in rows)
            removed += len(rows)
        return removed

    # ---- lookup --------------------------------------------------------------------------------

    def variants(self, key: str) -> list[SharedEntry]:
        rows = self._db.execute("SELECT meta, stale, file FROM entries WHERE key = ?", (key,)).fetchall()
        return [_entry(*row) for row in rows]

    def get(self, entry_id: str, *, read_below: int | None = None) -> tuple[SharedEntry, bytes | None] | None:
        """The entry and its body, or None (absent, or evicted by another worker since it was looked up).

        A body larger than ``read_below`` is not read (None): it is served from its file, as it streams.
        """
        row = self._db.execute("SELECT meta, stale, file, ref FROM entries WHERE id = ?", (entry_id,)).fetchone()
        if row is None:
            return None
        meta, stale, file, ref = row
        entry = _entry(meta, stale, file)
        body: bytes | None = None
        if read_below is None or entry.size <= read_below:
            try:
                body = (self.objects / file).read_bytes()
            except FileNotFoundError:
                return None
            if len(body) != entry.size:
                return None
        elif not (self.objects / file).exists():
            return None
        if not ref:
            # A lost reference bit only ages the object sooner.
            with contextlib.suppress(sqlite3.OperationalError), self._write():
                self._db.execute("UPDATE entries SET ref = 1 WHERE id = ?", (entry_id,))
        return entry, body

    def body_path(self, entry: SharedEntry) -> Path:
        return self.objects / entry.body_name

    # ---- storing -------------------------------------------------------------------------------

    def new_temp_body(self) -> Path:
        fd, tmp = tempfile.mkstemp(dir=self.objects, prefix=".incoming-")
        os.close(fd)
        return Path(tmp)

    def put(self, entry: Entry, body: bytes | None = None, body_file: Path | None = None) -> bool:
        """Store ``entry`` with its body (bytes, or a finished temp file to move in). False if it cannot fit."""
        if entry.size > self.capacity:
            if body_file is not None:
                body_file.unlink(missing_ok=True)
            return False
        name = f"{entry.id}-{secrets.token_hex(6)}.body"
        target = self.objects / name
        if body_file is not None:
            os.replace(body_file, target)
        else:
            fd, tmp = tempfile.mkstemp(dir=self.objects, prefix=".incoming-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(body or b"")
                os.replace(tmp, target)
            except OSError:
                Path(tmp).unlink(missing_ok=True)
                raise
        try:
            with self._write() as doomed:
                self._delete((entry.id,), doomed)
                self._make_room(entry.size, doomed)
                (seq,) = self._db.execute("SELECT next_seq FROM totals").fetchone()
                self._db.execute(
                    "INSERT INTO entries (id, key, path, file, size, stale, ref, seq, meta) VALUES (?,?,?,?,?,?,0,?,?)",
                    (entry.id, entry.key, entry.path, name, entry.size, int(entry.stale), seq, _meta(entry)),
                )
                self._db.executemany(
                    "INSERT OR IGNORE INTO tags (tag, id) VALUES (?, ?)", [(t, entry.id) for t in entry.surrogate_keys]
                )
                self._db.execute("UPDATE totals SET used = used + ?, next_seq = next_seq + 1", (entry.size,))
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return True

    def admits(self, entry_id: str, size: int) -> bool:
        """Size-aware admission for the whole edge: a large object new to the disk is stored on its second
        request, through whichever worker that comes (its first leaves a ghost id here, shared by all)."""
        if size > self.capacity:
            return False
        if self.large is None or size <= self.large:
            return True
        with self._write():
            if self._db.execute("SELECT 1 FROM entries WHERE id = ?", (entry_id,)).fetchone():
                return True
            if self._db.execute("DELETE FROM ghosts WHERE id = ?", (entry_id,)).rowcount:
                return True
            self._db.execute("INSERT INTO ghosts (id) VALUES (?)", (entry_id,))
            # As in S3FIFOTier: at most max(objects, capacity // large) ghosts, oldest dropped first.
            (count,) = self._db.execute("SELECT count(*) FROM entries").fetchone()
            self._db.execute(
                "DELETE FROM ghosts WHERE rowid IN (SELECT rowid FROM ghosts ORDER BY rowid"
                " LIMIT max(0, (SELECT count(*) FROM ghosts) - ?))",
                (max(count, self.capacity // self.large),),
            )
        return False

    def current_body(self, entry_id: str) -> Path | None:
        """The body file the index holds for ``entry_id`` now, if any."""
        row = self._db.execute("SELECT file FROM entries WHERE id = ?", (entry_id,)).fetchone()
        return None if row is None else self.objects / row[0]

    def _make_room(self, size: int, doomed: list[str]) -> None:
        (used,) = self._db.execute("SELECT used FROM totals").fetchone()
        (count,) = self._db.execute("SELECT count(*) FROM entries").fetchone()
        for _ in range(2 * count + 1):  # bounded: each lap clears a reference bit or evicts
            if used + size <= self.capacity:
                return
            row = self._db.execute("SELECT id, ref FROM entries ORDER BY seq LIMIT 1").fetchone()
            if row is None:
                return
            victim, ref = row
            if ref:
                self._db.execute(
                    "UPDATE entries SET ref = 0, seq = (SELECT next_seq FROM totals) WHERE id = ?", (victim,)
                )
                self._db.execute("UPDATE totals SET next_seq = next_seq + 1")
                continue
            (victim_size,) = self._db.execute("SELECT size FROM entries WHERE id = ?", (victim,)).fetchone()
            self._delete((victim,), doomed)
            self._db.execute("UPDATE totals SET evictions = evictions + 1")
            used -= victim_size

    def update_meta(self, entry: SharedEntry) -> None:
        """Rewrite a row's metadata (a 304 refresh) if the row still holds the body this entry was read with."""
        with self._write():
            self._db.execute(
                "UPDATE entries SET meta = ?, stale = ? WHERE id = ? AND file = ?",
                (_meta(entry), int(entry.stale), entry.id, entry.body_name),
            )

    # ---- removal and purges --------------------------------------------------------------------

    def remove(self, ids: Iterable[str]) -> int:
        with self._write() as doomed:
            return self._delete(ids, doomed)

    def remove_key(self, key: str) -> int:
        with self._write() as doomed:
            ids = [row[0] for row in self._db.execute("SELECT id FROM entries WHERE key = ?", (key,))]
            return self._delete(ids, doomed)

    def matching(
        self,
        *,
        paths: tuple[str, ...] = (),
        prefixes: tuple[str, ...] = (),
        tags: tuple[str, ...] = (),
        everything: bool = False,
    ) -> set[str]:
        if everything:
            return {row[0] for row in self._db.execute("SELECT id FROM entries")}
        ids: set[str] = set()
        for path in paths:
            ids.update(row[0] for row in self._db.execute("SELECT id FROM entries WHERE path = ?", (path,)))
        for tag in tags:
            ids.update(row[0] for row in self._db.execute("SELECT id FROM tags WHERE tag = ?", (tag,)))
        for prefix in prefixes:
            query = "SELECT id FROM entries WHERE substr(path, 1, ?) = ?"
            ids.update(row[0] for row in self._db.execute(query, (len(prefix), prefix)))
        return ids

    def purge(self, ids: set[str], *, soft: bool) -> int:
        if not soft:
            return self.remove(ids)
        marked = 0
        with self._write():
            for batch in _chunks(ids):
                marks = ",".join("?" * len(batch))
                marked += self._db.execute(f"UPDATE entries SET stale = 1 WHERE id IN ({marks})", batch).rowcount
        return marked

    # ---- start-up and stats --------------------------------------------------------------------

    def recover(self) -> int:
        """Make the index and the files agree (after a crash, or a cache dir from ``--workers 1``); rows kept.

        Run by the supervisor before any worker starts. Rows whose body is missing or has the wrong size are
        dropped; files no row names (torn writes, the single-process layout's ``.body``/``.meta``) are deleted;
        a lowered capacity is enforced.
        """
        referenced: dict[str, tuple[str, int]] = {
            file: (entry_id, size) for entry_id, file, size in self._db.execute("SELECT id, file, size FROM entries")
        }
        broken = []
        for file, (entry_id, size) in referenced.items():
            with contextlib.suppress(FileNotFoundError):
                if (self.objects / file).stat().st_size == size:
                    continue
            broken.append(entry_id)
        with self._write() as doomed:
            self._delete(broken, doomed)
            self._db.execute("UPDATE totals SET used = (SELECT coalesce(sum(size), 0) FROM entries)")
            self._make_room(0, doomed)
        kept = {row[0] for row in self._db.execute("SELECT file FROM entries")}
        for path in self.objects.iterdir():
            if path.name not in kept:
                with contextlib.suppress(OSError):
                    path.unlink()
        if broken:
            logger.warning("Dropped %d torn or missing objects from the shared disk tier", len(broken))
        return len(kept)

    def stats(self) -> tuple[int, int, int]:
        """(bytes used, objects, evictions) for the whole edge."""
        used, evictions = self._db.execute("SELECT used, evictions FROM totals").fetchone()
        (count,) = self._db.execute("SELECT count(*) FROM entries").fetchone()
        return int(used), int(count), int(evictions)
