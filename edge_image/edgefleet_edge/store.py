"""The edge's storage: this process's memory tier in front of the disk tier, one composition for one worker or many.

The hierarchy is inclusive (write-through), for every worker count. An object is written to the disk tier when it
is stored (when there is one), and small objects are also kept in the memory tier; a disk hit on a small object
is copied into memory. Evicting from memory only forgets the copy. Chosen once, for all worker counts, because:
- with ``--workers N`` the memory tiers are per process and the disk is shared, so an object one worker fetched
  must be on the disk for the others to hit it; an exclusive hierarchy (demote on memory eviction) cannot be
  exclusive against N memories anyway;
- a memory eviction never writes (demotions wrote bodies to disk on the hit path, at the moment memory was
  under pressure), and a restart loses nothing but the memory copies;
- the cost, the disk holding copies of what memory holds, is the memory tier's size, small next to the disk's.
With no disk tier, the memory tier is the only one, and its own admission decides.

Admission (``--cache-policy``) is asked once per object new to the cache, of the tier of record: the disk tier
when there is one (its state shared by all workers, ``disk_policy.py``), else the memory tier. Replacements, and
objects the caller says were ``admitted`` (streamed bodies asked before they were fetched, bodies collapsed
requests were waiting for) skip it. Every body read from disk is checked (length and CRC-32, ``body_check``); a
damaged one is evicted and counted. A disk error (ENOSPC, EIO, a full index) serves the request unstored and
pauses disk writes for ``DISK_PAUSE_SECONDS``.

Purges and invalidations: this process's memory and the disk; with ``--workers N`` the supervisor tells the other
workers (``on_invalidate``, ``supervisor.py``).
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .body_check import CorruptBody, matches
from .disk_tier import DiskTier, Reservation
from .entry import Entry, Tier
from .memory_tier import MemoryTier
from .purge_selector import PurgeSelector
from .tiers import DEFAULT_POLICY

__all__ = ["DISK_PAUSE_SECONDS", "Entry", "Reservation", "Store", "StoreStats", "Tier"]

logger = logging.getLogger(__name__)

DISK_PAUSE_SECONDS = 30.0
"""After a failed disk write, objects are served unstored this long before the disk is tried again."""
DISK_HEADROOM = 4 * 2**20
"""Free space the filesystem must keep beyond an object for it to be written (other writers, the index)."""
DiskError = (OSError, sqlite3.Error)
INLINE_READ = 64 * 1024
"""Disk hits up to this size are read on the event loop (one short read); larger ones stream from their file,
read in a worker thread (``streaming.FileBody``), so a slow disk does not stall the memory hits."""


@dataclass
class StoreStats:
    declined: dict[str, int] = field(default_factory=lambda: {"memory": 0, "disk": 0})
    """New objects admission did not store, by the tier that was asked (their next request may be stored)."""
    corrupt: int = 0
    """Stored bodies found truncated or changed when read, and evicted."""
    disk_errors: int = 0
    """Disk writes that failed (ENOSPC, EIO, ...): the object was served unstored."""


class Store:
    def __init__(
        self,
        memory_bytes: int,
        disk_bytes: int,
        cache_dir: Path | None,
        policy: str = DEFAULT_POLICY,
        *,
        on_invalidate: Callable[[str], None] | None = None,
    ) -> None:
        self.memory = MemoryTier(memory_bytes, policy)
        self.disk: DiskTier | None = (
            DiskTier(cache_dir, disk_bytes, policy) if cache_dir is not None and disk_bytes > 0 else None
        )
        if self.disk is not None:
            # Inclusive: the disk's policy would otherwise never hear of hits served from memory copies, and would
            # age the hottest objects out of the disk first. The hot path only tallies them; ``flush_hits`` folds
            # them into the disk policy in one transaction a second.
            self.memory.count_hits()
        self.max_memory_object = self.memory.max_object
        self.inline_read = min(INLINE_READ, self.max_memory_object)
        """Bodies of disk hits larger than this are not read on the event loop (``INLINE_READ``)."""
        # The memory tier's own maps, bound for the hit path (``plain_hits``): memory hits never reach the disk.
        self.entries = self.memory.entries
        self.by_key = self.memory.by_key
        self.on_invalidate = on_invalidate
        """Told the key of every invalidation made here, so the supervisor can tell the other workers."""
        self.stats = StoreStats()
        self.disk_hits = 0
        self.purge_generation = 0
        """Bumped by every purge: a fetch that started before a purge must not be stored as fresh."""
        self._disk_paused_until = 0.0

    def close(self) -> None:
        if self.disk is not None:
            self.disk.close()

    # ---- lookup --------------------------------------------------------------------------------

    def variants(self, key: str) -> Iterator[Entry]:
        local = self.by_key.get(key)
        if local:
            yield from self.memory.variants(key)
        if self.disk is None:
            return
        # Lazily: a memory hit (the caller stops at the first match) never reaches sqlite.
        try:
            found = self.disk.variants(key)
        except sqlite3.Error as exc:
            logger.warning("Could not read %s from the disk tier: %s", key, exc)
            return
        for entry in found:
            if not local or entry.id not in local:
                yield entry

    def get(self, entry_id: str) -> Entry | None:
        """The entry, counted as a hit. A small disk entry comes back as a checked memory copy (None if damaged)."""
        entry = self.memory.get(entry_id)
        if entry is not None or self.disk is None:
            return entry
        try:
            entry = self.disk.lookup(entry_id)
        except sqlite3.Error as exc:
            logger.warning("Could not read %s from the disk tier: %s", entry_id, exc)
            return None
        if entry is None:
            return None
        # Tallied like a memory hit and folded in by ``flush_hits``: no write transaction (which may wait for
        # another worker's) on the event loop per disk hit.
        self.memory.tally(entry_id)
        self.disk_hits += 1
        if entry.size > self.inline_read:
            return entry  # the proxy streams it from its file, off the loop (and ``promote``s it when whole)
        try:
            body = self.read_body(entry)
        except CorruptBody:
            return None
        self.promote(entry, body)
        return entry

    def flush_hits(self) -> None:
        """Fold the hits since the last call (memory hits, and disk hits) into the disk tier's policy, in one
        transaction (the data plane calls it once a second)."""
        hits = self.memory.take_hits()
        if self.disk is None or not hits:
            return
        try:
            self.disk.touch_many(hits)
        except sqlite3.Error as exc:  # a lost tally only ages those objects sooner
            logger.debug("Could not fold %d memory hits into the disk tier: %s", len(hits), exc)

    def promote(self, entry: Entry, body: bytes) -> None:
        """Keep a memory copy of a disk hit's checked body, when it is small enough for memory and the disk still
        holds that very body. A streamed hit ends long after it was looked up: a purge (or a purge and a refetch
        by another worker) meanwhile must not come back as a memory copy, and a soft purge makes the copy stale."""
        if not self.memory.holds(entry.size) or entry.id in self.entries or self.disk is None:
            return
        try:
            current = self.disk.lookup(entry.id)
        except sqlite3.Error:
            return
        if current is None or current.disk_file != entry.disk_file:
            return
        entry.stale = entry.stale or current.stale
        self.memory.keep(entry, body)

    def read_body(self, entry: Entry) -> bytes:
        """The body, checked against its length and checksum; ``CorruptBody`` (and the entry evicted) if not."""
        if entry.body is not None:
            return entry.body
        path = self.body_file(entry)
        if path is None:
            raise CorruptBody(entry.id)
        try:
            data = path.read_bytes()
        except OSError as exc:
            self.corrupt(entry, f"unreadable: {exc.strerror or exc}")
            raise CorruptBody(entry.id) from exc
        if not matches(data, entry.size, entry.checksum):
            self.corrupt(entry, f"{len(data)} bytes, expected {entry.size} with checksum {entry.checksum or '-'}")
            raise CorruptBody(entry.id)
        return data

    def corrupt(self, entry: Entry, why: str) -> None:
        """Evict a stored body that is not what was stored; the next request refetches it.

        Only the body ``entry`` was read with: another worker may have replaced (or evicted) the object since, which
        unlinks the old file. That is no damage, and the replacement stays."""
        if self.disk is not None and entry.disk_file:
            try:
                if not self.disk.remove_file(entry.id, entry.disk_file):
                    return
            except sqlite3.Error as exc:
                logger.warning("Could not remove %s from the disk tier: %s", entry.id, exc)
        held = self.entries.get(entry.id)
        if held is not None and held.disk_file == entry.disk_file:
            self.memory.drop(entry.id)
        self.stats.corrupt += 1
        logger.warning("Evicted %s: its stored body is damaged (%s)", entry.key, why)

    def body_file(self, entry: Entry) -> Path | None:
        if entry.body is not None or not entry.disk_file or self.disk is None:
            return None
        return self.disk.body_path(entry)

    def _holds(self, entry_id: str) -> bool:
        if entry_id in self.entries:
            return True
        try:
            return self.disk is not None and self.disk.contains(entry_id)
        except sqlite3.Error:
            return False

    # ---- storing -------------------------------------------------------------------------------

    def put(
        self,
        entry: Entry,
        body: bytes | None = None,
        reservation: Reservation | None = None,
        *,
        admitted: bool = False,
    ) -> bool:
        """Store ``entry`` with its body: bytes, or a finished stream's ``reservation`` (its temp file moves in).
        False when no tier keeps it; the response is then served from the bytes at hand.

        An object new to the cache must pass the admission of the tier of record (see the module docstring),
        unless ``admitted``; a replacement of a stored entry (a refetch) skips it.
        """
        new = not admitted and not self._holds(entry.id)
        self.memory.drop(entry.id)
        small = body is not None and self.memory.holds(entry.size)
        if self.disk is None:
            if not small or body is None:
                return False
            if new and not self.memory.admits(entry.id, entry.size):
                self.stats.declined["memory"] += 1
                return False
            self.memory.keep(entry, body)
            return True
        if new and not self._admitted_to_disk(entry.id, entry.size):
            if reservation is not None:
                self.release(reservation)
            return False
        on_disk = self._write_disk(entry, body, reservation)
        if small and body is not None:
            self.memory.keep(entry, body)
            return True
        entry.tier, entry.body = "disk", body  # not in memory: served from the bytes at hand, later from disk
        return on_disk

    def _write_disk(self, entry: Entry, body: bytes | None, reservation: Reservation | None) -> bool:
        """Write through to the disk tier; on a disk error count it, pause disk writes, and report it not stored."""
        assert self.disk is not None
        if not self.fits_disk(entry.size, written=reservation is not None):
            if reservation is not None:
                self.release(reservation)
            return False
        try:
            return self.disk.put(entry, body=body, reservation=reservation)
        except DiskError as exc:
            self.disk_failed(entry.key, exc)
            if reservation is not None:
                self.release(reservation)
            return False

    def admits_to_disk(self, entry: Entry, size: int) -> bool:
        """Whether a large body about to stream from the origin would be stored on the disk tier: it fits, and it
        is admitted if it is new to the cache. Asked once, before the body is fetched."""
        if not self.fits_disk(size):
            return False
        return self._holds(entry.id) or self._admitted_to_disk(entry.id, size)

    def _admitted_to_disk(self, entry_id: str, size: int) -> bool:
        assert self.disk is not None
        try:
            if self.disk.admits(entry_id, size):
                return True
        except DiskError as exc:
            logger.warning("Could not ask the disk tier's admission for %s: %s", entry_id, exc)
            return False
        self.stats.declined["disk"] += 1
        return False

    def fits_disk(self, size: int, *, written: bool = False) -> bool:
        """Whether an object of ``size`` bytes can be stored on the disk tier (evicting others as needed): it is no
        larger than the tier, disk writes are not paused after an error, and the filesystem has room for it (unless
        it is ``written`` already: a finished temp file moves in by rename)."""
        if self.disk is None or size > self.disk.capacity:
            return False
        if self._disk_paused_until and time.monotonic() < self._disk_paused_until:
            return False
        if written:
            return True
        try:
            free = shutil.disk_usage(self.disk.cache_dir).free
        except OSError:
            return False
        return size + DISK_HEADROOM <= free

    def reserve_disk(self, size: int) -> Reservation | None:
        """Disk space and a temp file for a body about to stream in (``size``: its Content-Length, or what is known
        of it), or None: no disk tier, no room, or a disk error. Give it back with ``put`` or ``release``."""
        if self.disk is None or not self.fits_disk(size):
            return None
        try:
            return self.disk.reserve(size)
        except DiskError as exc:
            self.disk_failed("a temp file", exc)
            return None

    def grow_reservation(self, reservation: Reservation, size: int) -> bool:
        """Hold ``size`` bytes for a stream longer than it said; False (the stream goes unstored) if they cannot be
        had."""
        if size <= reservation.size:
            return True  # the common case, once per chunk: no system call
        if self.disk is None or not self.fits_disk(size - reservation.size):
            return False
        try:
            return self.disk.grow(reservation, size)
        except DiskError as exc:
            self.disk_failed("a growing temp file", exc)
            return False

    def release(self, reservation: Reservation) -> None:
        if self.disk is not None:
            self.disk.release(reservation)

    def disk_failed(self, what: str, exc: BaseException) -> None:
        """Count a failed disk write and pause disk writes for a while (``DISK_PAUSE_SECONDS``)."""
        self.stats.disk_errors += 1
        self._disk_paused_until = time.monotonic() + DISK_PAUSE_SECONDS
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        logger.warning("Disk tier write of %s failed (%s): disk writes paused for %.0f s",
                       what, reason, DISK_PAUSE_SECONDS)  # fmt: skip

    def update_meta(self, entry: Entry) -> None:
        """Persist an entry's changed headers and freshness (a 304 refreshed it) on the disk tier."""
        if self.disk is None or not entry.disk_file:
            return
        try:
            self.disk.update_meta(entry)
        except DiskError as exc:
            logger.warning("Could not update %s on the disk tier: %s", entry.key, exc)

    # ---- removal and purges --------------------------------------------------------------------

    def remove(self, entry_id: str) -> None:
        self.memory.drop(entry_id)
        if self.disk is not None:
            try:
                self.disk.remove((entry_id,))
            except sqlite3.Error as exc:
                logger.warning("Could not remove %s from the disk tier: %s", entry_id, exc)

    def remove_key(self, key: str) -> int:
        """Invalidate every variant of ``key`` (an unsafe method, a no-store answer), in every worker."""
        removed = self.forget_key(key)
        if self.disk is not None:
            try:
                removed += self.disk.remove_key(key)
            except sqlite3.Error as exc:
                logger.warning("Could not remove %s from the disk tier: %s", key, exc)
        if self.on_invalidate is not None:
            self.on_invalidate(key)
        return removed

    def forget_key(self, key: str) -> int:
        """Drop this process's memory copies of ``key`` (another worker invalidated it)."""
        return self.memory.drop_key(key)

    def matching(
        self,
        *,
        paths: tuple[str, ...] = (),
        prefixes: tuple[str, ...] = (),
        tags: tuple[str, ...] = (),
        everything: bool = False,
    ) -> set[str]:
        selector = PurgeSelector(paths, prefixes, tags, everything)
        found = self.memory.matching(selector)
        if self.disk is not None:
            found |= self.disk.matching(selector)
        return found

    def purge(self, ids: set[str], *, soft: bool) -> int:
        self.purge_generation += 1
        for entry_id in ids:
            entry = self.entries.get(entry_id)
            if entry is None:
                continue
            if soft:
                entry.stale = True
            else:
                self.memory.drop(entry_id)
        if self.disk is not None:
            if soft:
                self.disk.mark_stale(ids)
            else:
                self.disk.remove(ids)
        return len(ids)

    # ---- start-up and stats --------------------------------------------------------------------

    def load_disk(self) -> int:
        """Make the disk tier consistent before serving (once per edge: the supervisor's, with workers); objects
        it holds."""
        return self.disk.recover() if self.disk is not None else 0

    def evictions(self) -> dict[str, int]:
        return {"memory": self.memory.evictions, "disk": self.disk.stats()[2] if self.disk is not None else 0}

    def tier_stats(self) -> dict[str, tuple[int, int, int]]:
        """tier -> (bytes used, objects, capacity); the disk's for the whole edge."""
        used, count, capacity = 0, 0, 0
        if self.disk is not None:
            used, count, _ = self.disk.stats()
            capacity = self.disk.capacity
        return {
            "memory": (self.memory.used, len(self.memory), self.memory.capacity),
            "disk": (used, count, capacity),
        }
