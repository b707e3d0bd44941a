"""A worker's store when ``--workers`` > 1: its own memory tier in front of the disk tier all workers share.

The hierarchy is inclusive. Every stored object is written through to the shared disk tier (when it fits
there), so an object one worker fetched is a disk hit for every other; a disk hit is then copied into the
reading worker's memory tier, so hot objects are served from memory by every worker. Evicting from memory
therefore only forgets the copy (the disk already has it).

The memory tier is the plain ``Store`` with no disk of its own; its budget is the edge's ``--memory``
divided by the number of workers. Admission (``--cache-policy``) is asked of each tier for objects new to
it: of this worker's memory, and of the shared disk, whose ghost list all workers share. Objects above the
memory-object limit are never read whole here: the proxy streams them from their body file.

Each memory copy ages on its own: when it expires its worker revalidates it, even if another worker has
refreshed the disk copy meanwhile (one conditional request per worker per expiry, at most).

Purges and invalidations reach every worker's memory through the supervisor (see ``supervisor.py``); this
class only keeps one worker's copies and the shared index honest.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .body_check import CorruptBody, matches
from .shared_disk import SharedDiskIndex, SharedEntry
from .store import Entry, Store
from .tiers import DEFAULT_POLICY

logger = logging.getLogger(__name__)


class SharedStore(Store):
    def __init__(
        self,
        memory_bytes: int,
        index: SharedDiskIndex,
        policy: str = DEFAULT_POLICY,
        on_invalidate: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(memory_bytes, 0, None, policy)
        self.index = index
        self.disk.capacity = index.capacity  # reported capacity; the index enforces it
        self.on_invalidate = on_invalidate
        """Told the key of every invalidation made here, so the supervisor can tell the other workers."""
        self.disk_hits = 0

    # ---- lookup --------------------------------------------------------------------------------

    def variants(self, key: str) -> Iterator[Entry]:
        local = self.by_key.get(key)
        if local:
            for entry_id in local:
                yield self.entries[entry_id]
        # Lazily: a memory hit (the caller stops at the first match) never reaches sqlite.
        for entry in self.index.variants(key):
            if not local or entry.id not in local:
                yield entry

    def get(self, entry_id: str) -> Entry | None:
        entry = self.entries.get(entry_id)
        if entry is not None:
            self.memory.touch(entry_id)
            return entry
        try:
            found = self.index.get(entry_id, read_below=self.max_memory_object)
        except (OSError, sqlite3.Error) as exc:
            logger.warning("Could not read %s from the shared disk tier: %s", entry_id, exc)
            return None
        if found is None:
            return None
        shared, body = found
        if body is not None and not matches(body, shared.size, shared.checksum):
            self.corrupt(shared, f"{len(body)} bytes on the shared disk, expected {shared.size}")
            return None
        self.disk_hits += 1
        if body is None:
            return shared  # large: the proxy streams it from its file (body_file)
        if shared.size <= self.memory.capacity and self.memory.admits(entry_id, shared.size):
            copy = Entry(**{name: getattr(shared, name) for name in Entry.__dataclass_fields__})
            self._remember(copy, body)
            return copy
        shared.body = body  # not (yet) admitted to this worker's memory: served from this read
        return shared

    def read_body(self, entry: Entry) -> bytes:
        if entry.body is not None:
            return entry.body
        path = self.body_file(entry)
        if path is None:
            raise CorruptBody(entry.id)  # it left the shared disk tier since it was looked up: refetch
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CorruptBody(entry.id) from exc
        if not matches(data, entry.size, entry.checksum):
            self.corrupt(entry, f"{len(data)} bytes on the shared disk, expected {entry.size}")
            raise CorruptBody(entry.id)
        return data

    def body_file(self, entry: Entry) -> Path | None:
        if entry.body is not None:
            return None
        if isinstance(entry, SharedEntry):
            return self.index.body_path(entry)
        return self.index.current_body(entry.id)

    # ---- storing -------------------------------------------------------------------------------

    def put(
        self, entry: Entry, body: bytes | None = None, body_file: Path | None = None, *, admitted: bool = False
    ) -> bool:
        """Write ``entry`` through to the shared disk and, when small and admitted, keep it in this worker's memory.

        Admission (``--cache-policy``) is asked of each tier for objects new to it, unless ``admitted`` says it
        was asked before the body streamed: the shared disk's (size-aware, shared by all workers) and this
        worker's memory's. False when neither tier keeps it.
        """
        new_here = entry.id not in self.entries and not admitted
        Store.remove(self, entry.id)
        on_disk = False
        try:
            if admitted or self.index.admits(entry.id, entry.size):
                on_disk = self.index.put(entry, body, body_file)
                body_file = None  # moved in, or removed because it cannot fit
            else:
                self.stats.declined["disk"] += 1
        except OSError as exc:  # a full or broken disk must not stop serving from memory
            self.disk_failed(entry.key, exc)
        except sqlite3.Error as exc:
            logger.warning("Could not store %s on the shared disk tier: %s", entry.key, exc)
        if body_file is not None:
            body_file.unlink(missing_ok=True)
        if body is not None and entry.size <= self.max_memory_object and entry.size <= self.memory.capacity:
            if not new_here or self.memory.admits(entry.id, entry.size):
                self._remember(entry, body)
                return True
            self.stats.declined["memory"] += 1
        # Not kept in memory: this response is served from the bytes at hand; later hits read the disk.
        entry.tier, entry.body = "disk", body
        return on_disk

    def fits_disk(self, size: int, *, written: bool = False) -> bool:
        if self._disk_paused_until and time.monotonic() < self._disk_paused_until:
            return False  # after a disk error, served unstored for a while (``Store.disk_failed``)
        return size <= self.index.capacity

    def admits_to_disk(self, entry: Entry, size: int) -> bool:
        if not self.fits_disk(size):
            return False
        if self.index.admits(entry.id, size):
            return True
        self.stats.declined["disk"] += 1
        return False

    def _remember(self, entry: Entry, body: bytes) -> None:
        entry.body, entry.tier = body, "memory"
        self._index(entry)
        for victim in self.memory.add(entry.id, entry.size):
            self._demote(victim)

    def _demote(self, entry_id: str) -> None:
        # Write-through means the disk already holds it: only this worker's copy goes.
        if entry_id in self.entries:
            self.stats.evictions["memory"] += 1
            Store.remove(self, entry_id)

    def _write_meta(self, entry: Entry) -> None:
        if isinstance(entry, SharedEntry):
            self.index.update_meta(entry)

    def new_temp_body(self) -> Path | None:
        try:
            return self.index.new_temp_body()
        except OSError as exc:
            self.disk_failed("a temp file", exc)
            return None

    def remove(self, entry_id: str) -> None:
        Store.remove(self, entry_id)
        self.index.remove((entry_id,))

    def remove_key(self, key: str) -> int:
        removed = self.forget_key(key)
        removed += self.index.remove_key(key)
        if self.on_invalidate is not None:
            self.on_invalidate(key)
        return removed

    def forget_key(self, key: str) -> int:
        """Drop this worker's copies of ``key`` (another worker invalidated it)."""
        ids = list(self.by_key.get(key, ()))
        for entry_id in ids:
            Store.remove(self, entry_id)
        return len(ids)

    # ---- purges --------------------------------------------------------------------------------

    def matching(
        self,
        *,
        paths: tuple[str, ...] = (),
        prefixes: tuple[str, ...] = (),
        tags: tuple[str, ...] = (),
        everything: bool = False,
    ) -> set[str]:
        local = super().matching(paths=paths, prefixes=prefixes, tags=tags, everything=everything)
        return local | self.index.matching(paths=paths, prefixes=prefixes, tags=tags, everything=everything)

    def purge(self, ids: set[str], *, soft: bool) -> int:
        self.purge_generation += 1
        for entry_id in ids:
            entry = self.entries.get(entry_id)
            if entry is None:
                continue
            if soft:
                entry.stale = True
            else:
                Store.remove(self, entry_id)
        self.index.purge(ids, soft=soft)
        return len(ids)

    # ---- start-up and stats --------------------------------------------------------------------

    def load_disk(self) -> int:
        return 0  # the supervisor recovers the shared index before any worker starts

    def tier_stats(self) -> dict[str, tuple[int, int, int]]:
        used, count, _ = self.index.stats()
        return {
            "memory": (self.memory.used, len(self.memory), self.memory.capacity),
            "disk": (used, count, self.index.capacity),
        }
