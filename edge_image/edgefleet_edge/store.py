"""The edge's storage: a memory tier and a disk tier, each under a hard byte limit, with one index.

Small bodies live in memory; when the memory tier evicts them they move to disk (if there is a disk
tier), and bodies too large for memory go to disk directly (streamed ones as a finished temp file from
``new_temp_body``, moved in by ``put(body_file=...)``). The disk tier survives restarts: each
object is a body file plus a metadata file renamed into place last, so a torn write leaves a body
without metadata, which start-up deletes and never serves. Every body carries a CRC-32 and is checked before it
is served (``body_check``); a disk error serves the request unstored and pauses disk writes for a while.

Each tier admits and evicts by the policy chosen on traces (``tiers.py``; ``bench/hitratio.py``): by default
``s3fifo-gdsf``, S3-FIFO's probation queue in front of a GDSF-ordered main queue, under which a new object much
larger than the objects the tier usually stores waits for its second request; ``s3fifo-sa``, ``s3fifo`` and
``lru`` remain selectable (``--cache-policy``). Admission is asked only for objects new to the cache:
replacements and demotions from memory to disk are always kept. The index also answers purges by path, prefix,
surrogate key and all.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from .body_check import CorruptBody, matches
from .tiers import DEFAULT_POLICY, TierPolicy, make_tier_policy

logger = logging.getLogger(__name__)

Tier = Literal["memory", "disk"]
DISK_PAUSE_SECONDS = 30.0
"""After a failed disk write, objects are served unstored this long before the disk is tried again."""
DISK_HEADROOM = 4 * 2**20
"""Free space the filesystem must keep beyond an object for it to be written (metadata, other writers)."""


@dataclass
class Entry:
    """A stored response. ``body`` is set for the memory tier; disk entries read ``body_path``."""

    key: str
    variant: str
    path: str
    status: int
    headers: list[tuple[str, str]]
    size: int
    request_time: float
    response_time: float
    initial_age: float
    lifetime: float
    stale_while_revalidate: float
    stale_if_error: float
    must_revalidate: bool
    vary: tuple[str, ...]
    surrogate_keys: tuple[str, ...]
    stale: bool = False
    """Soft-purged: serve only after revalidation."""
    grace_allowed: bool = True
    """Whether the edge's grace may serve it stale when the origin fails (``freshness.Policy.grace_allowed``)."""
    checksum: str = ""
    """CRC-32 of the body (``body_check``); empty for entries stored before checksums existed."""
    body: bytes | None = field(default=None, repr=False)
    tier: Tier = "memory"
    hit_head: bytes | None = field(default=None, repr=False, compare=False)
    """The serialised response head for a plain hit, minus Age and Date (built once)."""

    @property
    def id(self) -> str:
        return hashlib.sha256(f"{self.key}\x00{self.variant}".encode()).hexdigest()[:32]

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None


@dataclass
class StoreStats:
    evictions: dict[str, int] = field(default_factory=lambda: {"memory": 0, "disk": 0})
    declined: dict[str, int] = field(default_factory=lambda: {"memory": 0, "disk": 0})
    """New objects each tier's admission did not store (their next request may be stored)."""
    corrupt: int = 0
    """Stored bodies found truncated or changed when read, and evicted."""
    disk_errors: int = 0
    """Disk writes that failed (ENOSPC, EIO, ...): the object was served unstored."""


class Store:
    def __init__(
        self, memory_bytes: int, disk_bytes: int, cache_dir: Path | None, policy: str = DEFAULT_POLICY
    ) -> None:
        self.memory: TierPolicy = make_tier_policy(policy, memory_bytes)
        self.disk: TierPolicy = make_tier_policy(policy, disk_bytes if cache_dir is not None else 0)
        self.cache_dir = cache_dir
        # Objects larger than this skip memory: one object never takes more than an eighth of it.
        self.max_memory_object = max(1, memory_bytes // 8)
        self.entries: dict[str, Entry] = {}
        self.by_key: dict[str, set[str]] = {}
        self.by_path: dict[str, set[str]] = {}
        self.by_tag: dict[str, set[str]] = {}
        self.stats = StoreStats()
        self.purge_generation = 0
        """Bumped by every purge: a fetch that started before a purge must not be stored as fresh."""
        self._disk_paused_until = 0.0
        if cache_dir is not None:
            (cache_dir / "objects").mkdir(parents=True, exist_ok=True)

    # ---- lookup --------------------------------------------------------------------------------

    def variants(self, key: str) -> Iterator[Entry]:
        for entry_id in self.by_key.get(key, ()):
            yield self.entries[entry_id]

    def get(self, entry_id: str) -> Entry | None:
        entry = self.entries.get(entry_id)
        if entry is not None:
            (self.memory if entry.tier == "memory" else self.disk).touch(entry_id)
        return entry

    def read_body(self, entry: Entry) -> bytes:
        """The body, checked against its length and checksum; ``CorruptBody`` (and the entry evicted) if not."""
        if entry.body is not None:
            return entry.body
        try:
            data = self._body_path(entry.id).read_bytes()
        except OSError as exc:
            self.corrupt(entry, f"unreadable: {exc.strerror or exc}")
            raise CorruptBody(entry.id) from exc
        if not matches(data, entry.size, entry.checksum):
            self.corrupt(entry, f"{len(data)} bytes, expected {entry.size} with checksum {entry.checksum or '-'}")
            raise CorruptBody(entry.id)
        return data

    def corrupt(self, entry: Entry, why: str) -> None:
        """Evict a stored body that is not what was stored; the next request refetches it."""
        self.stats.corrupt += 1
        logger.warning("Evicted %s: its stored body is damaged (%s)", entry.key, why)
        self.remove(entry.id)

    def body_file(self, entry: Entry) -> Path | None:
        return None if entry.body is not None else self._body_path(entry.id)

    # ---- storing -------------------------------------------------------------------------------

    def put(
        self, entry: Entry, body: bytes | None = None, body_file: Path | None = None, *, admitted: bool = False
    ) -> bool:
        """Store ``entry`` with its body (bytes, or a finished temp file to move in). False when it is not stored.

        An object new to the cache must pass the admission of the tier it would land in (the memory tier if
        it is small enough for it, else the disk tier); a declined object is not stored, and with the default
        policy that is how a large object's first request goes. A replacement of a stored entry (a refetch)
        skips admission: the object was admitted already. Demotions from memory to disk never ask, and nor
        does an object the caller says was ``admitted``: a streamed body whose admission was asked before it was
        fetched (``admits_to_disk``), or one that collapsed requests were waiting for (its second request).
        """
        new = entry.id not in self.entries and not admitted
        self.remove(entry.id)
        if body is not None and entry.size <= self.max_memory_object and entry.size <= self.memory.capacity:
            if new and not self.memory.admits(entry.id, entry.size):
                self.stats.declined["memory"] += 1
                return False
            entry.body, entry.tier = body, "memory"
            self._index(entry)
            for victim in self.memory.add(entry.id, entry.size):
                self._demote(victim)
            return True
        fits = self.fits_disk(entry.size, written=body_file is not None)
        if not fits or (new and not self._admitted_to_disk(entry.id, entry.size)):
            if body_file is not None:
                body_file.unlink(missing_ok=True)
            return False
        if not self._written(entry, body, body_file):
            return False
        self._index(entry)
        for victim in self.disk.add(entry.id, entry.size):
            self._drop(victim, evicted=True)
        return True

    def _written(self, entry: Entry, body: bytes | None, body_file: Path | None) -> bool:
        """Write an entry to the disk tier; on a disk error (ENOSPC, EIO, ...) count it, pause disk writes for a
        while, and report it not stored: the response is served from the bytes at hand, never an error."""
        entry.tier, entry.body = "disk", None
        try:
            self._write_disk(entry, body, body_file)
        except OSError as exc:
            self.disk_failed(entry.key, exc)
            for leftover in (body_file, self._body_path(entry.id), self._meta_path(entry.id)):
                if leftover is not None:
                    leftover.unlink(missing_ok=True)
            entry.body, entry.tier = body, "memory"
            return False
        return True

    def admits_to_disk(self, entry: Entry, size: int) -> bool:
        """Whether a large body about to stream from the origin would be stored on the disk tier: it fits,
        and it is admitted if it is new to the cache. Asked once, before the body is fetched."""
        if not self.fits_disk(size):
            return False
        return entry.id in self.entries or self._admitted_to_disk(entry.id, size)

    def _admitted_to_disk(self, entry_id: str, size: int) -> bool:
        if self.disk.admits(entry_id, size):
            return True
        self.stats.declined["disk"] += 1
        return False

    def _demote(self, entry_id: str) -> None:
        entry = self.entries.get(entry_id)
        if entry is None:
            return
        self.stats.evictions["memory"] += 1
        body = entry.body
        self._drop(entry_id, evicted=False)
        if body is not None and self.fits_disk(entry.size):
            if not self._written(entry, body, None):
                return
            self._index(entry)
            for victim in self.disk.add(entry.id, entry.size):
                self._drop(victim, evicted=True)

    def _index(self, entry: Entry) -> None:
        self.entries[entry.id] = entry
        self.by_key.setdefault(entry.key, set()).add(entry.id)
        self.by_path.setdefault(entry.path, set()).add(entry.id)
        for tag in entry.surrogate_keys:
            self.by_tag.setdefault(tag, set()).add(entry.id)

    def _drop(self, entry_id: str, *, evicted: bool) -> None:
        entry = self.entries.pop(entry_id, None)
        if entry is None:
            return
        tier = self.memory if entry.tier == "memory" else self.disk
        tier.remove(entry_id)
        if evicted:
            self.stats.evictions[entry.tier] += 1
        for index, name in ((self.by_key, entry.key), (self.by_path, entry.path)):
            members = index.get(name)
            if members is not None:
                members.discard(entry_id)
                if not members:
                    del index[name]
        for tag in entry.surrogate_keys:
            members = self.by_tag.get(tag)
            if members is not None:
                members.discard(entry_id)
                if not members:
                    del self.by_tag[tag]
        if entry.tier == "disk":
            self._body_path(entry_id).unlink(missing_ok=True)
            self._meta_path(entry_id).unlink(missing_ok=True)

    def remove(self, entry_id: str) -> None:
        self._drop(entry_id, evicted=False)

    def remove_key(self, key: str) -> int:
        ids = list(self.by_key.get(key, ()))
        for entry_id in ids:
            self.remove(entry_id)
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
        if everything:
            return set(self.entries)
        ids: set[str] = set()
        for path in paths:
            ids |= self.by_path.get(path, set())
        for tag in tags:
            ids |= self.by_tag.get(tag, set())
        if prefixes:
            for path, members in self.by_path.items():
                if path.startswith(prefixes):
                    ids |= members
        return ids

    def purge(self, ids: set[str], *, soft: bool) -> int:
        self.purge_generation += 1
        for entry_id in ids:
            entry = self.entries.get(entry_id)
            if entry is None:
                continue
            if soft:
                entry.stale = True
                if entry.tier == "disk":
                    self._write_meta(entry)
            else:
                self.remove(entry_id)
        return len(ids)

    # ---- disk ----------------------------------------------------------------------------------

    def _body_path(self, entry_id: str) -> Path:
        assert self.cache_dir is not None
        return self.cache_dir / "objects" / f"{entry_id}.body"

    def _meta_path(self, entry_id: str) -> Path:
        assert self.cache_dir is not None
        return self.cache_dir / "objects" / f"{entry_id}.meta"

    def _write_disk(self, entry: Entry, body: bytes | None, body_file: Path | None) -> None:
        target = self._body_path(entry.id)
        if body_file is not None:
            os.replace(body_file, target)
        else:
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".body-")
            with os.fdopen(fd, "wb") as handle:
                handle.write(body or b"")
            os.replace(tmp, target)
        self._write_meta(entry)  # last: metadata present means the body is complete

    def update_meta(self, entry: Entry) -> None:
        """Persist an entry's changed headers and freshness (a 304 refreshed it): disk entries only."""
        if entry.tier == "disk":
            self._write_meta(entry)

    def _write_meta(self, entry: Entry) -> None:
        meta = asdict(entry)
        meta.pop("body")
        meta.pop("hit_head")
        target = self._meta_path(entry.id)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".meta-")
        with os.fdopen(fd, "w") as handle:
            json.dump(meta, handle)
        os.replace(tmp, target)

    def fits_disk(self, size: int, *, written: bool = False) -> bool:
        """Whether an object of ``size`` bytes can be stored on the disk tier (evicting others as needed): it is no
        larger than the tier, disk writes are not paused after an error, and the filesystem has room for it (unless
        it is ``written`` already: a finished temp file moves in by rename)."""
        if self.cache_dir is None or size > self.disk.capacity:
            return False
        if self._disk_paused_until and time.monotonic() < self._disk_paused_until:
            return False
        if written:
            return True
        try:
            free = shutil.disk_usage(self.cache_dir).free
        except OSError:
            return False
        return size + DISK_HEADROOM <= free

    def new_temp_body(self) -> Path | None:
        """A temp file in the disk tier for a body that streams in, or None (no disk tier, or a disk error)."""
        if self.cache_dir is None:
            return None
        try:
            fd, tmp = tempfile.mkstemp(dir=self.cache_dir / "objects", prefix=".incoming-")
        except OSError as exc:
            self.disk_failed("a temp file", exc)
            return None
        os.close(fd)
        return Path(tmp)

    def disk_failed(self, what: str, exc: OSError) -> None:
        """Count a failed disk write and pause disk writes for a while (``DISK_PAUSE_SECONDS``)."""
        self.stats.disk_errors += 1
        self._disk_paused_until = time.monotonic() + DISK_PAUSE_SECONDS
        logger.warning("Disk tier write of %s failed (%s): disk writes paused for %.0f s",
                       what, exc.strerror or exc, DISK_PAUSE_SECONDS)  # fmt: skip

    def load_disk(self) -> int:
        """Rebuild the index from the disk tier; delete torn writes and leftovers. Objects loaded."""
        if self.cache_dir is None:
            return 0
        objects = self.cache_dir / "objects"
        loaded = 0
        for leftover in objects.glob(".*"):
            leftover.unlink(missing_ok=True)
        for meta_path in sorted(objects.glob("*.meta")):
            try:
                meta = json.loads(meta_path.read_text())
                meta["headers"] = [tuple(pair) for pair in meta["headers"]]
                meta["vary"] = tuple(meta["vary"])
                meta["surrogate_keys"] = tuple(meta["surrogate_keys"])
                entry = Entry(**meta)
            except (OSError, ValueError, TypeError, KeyError) as exc:
                logger.warning("Dropped unreadable cache metadata %s: %s", meta_path.name, exc)
                meta_path.unlink(missing_ok=True)
                continue
            body = self._body_path(entry.id)
            if (
                not body.exists()
                or body.stat().st_size != entry.size
                or entry.size > self.disk.capacity - self.disk.used
            ):
                meta_path.unlink(missing_ok=True)
                body.unlink(missing_ok=True)
                continue
            entry.tier, entry.body = "disk", None
            self._index(entry)
            for victim in self.disk.add(entry.id, entry.size):
                self._drop(victim, evicted=True)
            loaded += 1
        for body in objects.glob("*.body"):
            if body.name.removesuffix(".body") not in self.entries:
                with contextlib.suppress(OSError):
                    body.unlink()
        return loaded

    def tier_stats(self) -> dict[str, tuple[int, int, int]]:
        """tier -> (bytes used, objects, capacity)."""
        return {
            "memory": (self.memory.used, len(self.memory), self.memory.capacity),
            "disk": (self.disk.used, len(self.disk), self.disk.capacity),
        }
