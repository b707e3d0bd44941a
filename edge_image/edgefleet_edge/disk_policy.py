"""The tier policies of ``tiers.py``, run on the disk tier's sqlite index so every worker process shares one state.

Why a second engine: the disk tier is shared by an edge's worker processes, and a policy whose queues live in one
process's memory would be N different policies (or none: the disk tier used to run its own CLOCK and ignore
``--cache-policy``). Here each policy's state is in the index itself: per row, the queue it is in (``small``), its
place in that queue (``gen``, a sequence number), its hit count (``freq``), the count its priority was computed
with (``pushed``) and its GDSF ``priority``; per tier, in ``policy_state``, the bytes on probation, the GDSF clock
and the running mean of the sizes asked about; the ghost list in ``ghosts``. Every method runs inside the caller's
write transaction (``BEGIN IMMEDIATE``), so decisions are serialised across workers.

The parameters come from the in-memory tier built by ``tiers.make_tier_policy`` (one definition), and each method
mirrors that class step by step: replaying a trace through both gives the same hits and misses
(``tests/edge_policy/test_disk_policy.py``). Lazy deletion and compaction have no counterpart here: a row is
removed from its queue when it is deleted.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from .tiers import ByteLRU, S3FIFOGDSFTier, S3FIFOTier, make_tier_policy

POLICY_SCHEMA = """
CREATE TABLE IF NOT EXISTS policy_state (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    next_gen INTEGER NOT NULL,
    small_used INTEGER NOT NULL,
    clock REAL NOT NULL,
    asked INTEGER NOT NULL,
    mean_asked REAL NOT NULL
);
INSERT OR IGNORE INTO policy_state VALUES (1, 0, 0, 0.0, 0, 0.0);
CREATE TABLE IF NOT EXISTS ghosts (id TEXT PRIMARY KEY, requests INTEGER NOT NULL, gen INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS ghosts_gen ON ghosts(gen);
"""
"""The policy's own tables; its per-row columns (small, gen, freq, pushed, priority) are in ``entries``."""

_HIT_COUNT_CAP = 255  # as tiers._HIT_COUNT_CAP


@dataclass(frozen=True)
class PolicyParams:
    """What distinguishes the policies, read off the in-memory tier of the same name and capacity."""

    kind: str  # "lru", "s3fifo" or "gdsf"
    capacity: int
    small_capacity: int = 0
    max_freq: int = 0
    # s3fifo
    large: int | None = None
    large_lap_cost: int = 1
    ghost_main_evictions: bool = False
    # gdsf
    frequency_weight: float = 0.0
    size_weight: float = 0.0
    ghost_factor: int = 0
    large_floor: int = 0
    large_multiple: int = 0

    @classmethod
    def of(cls, name: str, capacity: int) -> PolicyParams:
        tier = make_tier_policy(name, capacity)
        if isinstance(tier, ByteLRU):
            return cls("lru", capacity)
        if isinstance(tier, S3FIFOTier):
            return cls("s3fifo", capacity, tier.small_capacity, tier.max_freq, large=tier.large,
                       large_lap_cost=tier.large_lap_cost, ghost_main_evictions=tier.ghost_main_evictions)  # fmt: skip
        assert isinstance(tier, S3FIFOGDSFTier)
        return cls("gdsf", capacity, tier.small_capacity, tier.max_freq, frequency_weight=tier.frequency_weight,
                   size_weight=tier.size_weight, ghost_factor=tier.ghost_factor, large_floor=tier.large_floor,
                   large_multiple=tier.large_multiple)  # fmt: skip


class SqlPolicy:
    """One policy over ``entries`` (id, size and the policy columns). ``forget(id)`` is the tier's: it deletes the
    row (and dooms its file); ``count()`` is the number of rows."""

    def __init__(
        self, db: sqlite3.Connection, params: PolicyParams, forget: Callable[[str], None], count: Callable[[], int]
    ) -> None:
        self.db = db
        self.p = params
        self._forget = forget
        self._count = count

    # ---- shared state --------------------------------------------------------------------------

    def _next_gen(self) -> int:
        (gen,) = self.db.execute("UPDATE policy_state SET next_gen = next_gen + 1 RETURNING next_gen - 1").fetchone()
        return int(gen)

    def _state(self, column: str) -> float:
        (value,) = self.db.execute(f"SELECT {column} FROM policy_state").fetchone()
        return float(value)

    def _in_ghost(self, item: str) -> bool:
        return self.db.execute("SELECT 1 FROM ghosts WHERE id = ?", (item,)).fetchone() is not None

    def _stored(self, item: str) -> bool:
        return self.db.execute("SELECT 1 FROM entries WHERE id = ?", (item,)).fetchone() is not None

    def _trim_ghosts(self, limit: int) -> None:
        self.db.execute(
            "DELETE FROM ghosts WHERE id IN (SELECT id FROM ghosts ORDER BY gen"
            " LIMIT max(0, (SELECT count(*) FROM ghosts) - ?))",
            (limit,),
        )

    # ---- the TierPolicy operations -------------------------------------------------------------

    def touch(self, item: str, hits: int = 1) -> None:
        """``hits`` hits (several when a worker's memory-tier hits are folded in at once)."""
        if self.p.kind == "lru":
            self.db.execute("UPDATE entries SET gen = ? WHERE id = ?", (self._next_gen(), item))
            return
        cap = self.p.max_freq if self.p.kind == "s3fifo" else _HIT_COUNT_CAP
        self.db.execute("UPDATE entries SET freq = min(freq + ?, ?) WHERE id = ? AND freq < ?", (hits, cap, item, cap))

    def admits(self, item: str, size: int) -> bool:
        p = self.p
        if size > p.capacity:
            return False
        if p.kind == "lru":
            return True
        if p.kind == "s3fifo":
            if p.large is None or size <= p.large or self._in_ghost(item) or self._stored(item):
                return True
            self.db.execute("INSERT INTO ghosts (id, requests, gen) VALUES (?, 0, ?)", (item, self._next_gen()))
            self._trim_ghosts(max(self._count(), p.capacity // p.large))
            return False
        asked, mean = self.db.execute("SELECT asked, mean_asked FROM policy_state").fetchone()
        large = max(p.large_floor, int(p.large_multiple * mean))
        asked = min(asked + 1, 1024)
        mean += (size - mean) / asked
        self.db.execute("UPDATE policy_state SET asked = ?, mean_asked = ?", (asked, mean))
        if size <= large or self._in_ghost(item) or self._stored(item):
            return True
        self._remember(item, 0)
        return False

    def add(self, item: str, size: int) -> None:
        """Queue a row just inserted (room was made with ``evict_one``)."""
        if self.p.kind == "lru":
            self.db.execute("UPDATE entries SET small = 0, gen = ?, freq = 0 WHERE id = ?", (self._next_gen(), item))
            return
        row = self.db.execute("DELETE FROM ghosts WHERE id = ? RETURNING requests", (item,)).fetchone()
        if self.p.kind == "s3fifo":
            self.db.execute("UPDATE entries SET freq = 0 WHERE id = ?", (item,))
            self._place(item, size, small=row is None)
            return
        if row is None:
            self.db.execute("UPDATE entries SET freq = 0 WHERE id = ?", (item,))
            self._place(item, size, small=True)
        else:
            self.db.execute("UPDATE entries SET freq = ? WHERE id = ?", (row[0] + 1, item))
            self._push(item, size)

    def remove(self, item: str) -> None:
        """Take a row out of its queue; the caller deletes it."""
        self.db.execute(
            "UPDATE policy_state SET small_used = small_used - (SELECT coalesce(sum(size), 0) FROM entries"
            " WHERE id = ? AND small = 1)",
            (item,),
        )

    def evict_one(self) -> str | None:
        """Evict one row (through ``forget``); its id, or None when nothing is left."""
        if self.p.kind == "lru":
            row = self.db.execute("SELECT id FROM entries ORDER BY gen LIMIT 1").fetchone()
            if row is None:
                return None
            self._forget(row[0])
            return str(row[0])
        p = self.p
        while True:  # terminates as tiers.S3FIFO*Tier._evict_one: each lap promotes once, spends a hit, or evicts
            small = self.db.execute(
                "SELECT id, size, freq FROM entries WHERE small = 1 ORDER BY gen LIMIT 1"
            ).fetchone()
            main_empty = self.db.execute("SELECT 1 FROM entries WHERE small = 0 LIMIT 1").fetchone() is None
            if small is not None and (self._state("small_used") >= p.small_capacity or main_empty):
                item, size, freq = small
                self.db.execute("UPDATE policy_state SET small_used = small_used - ?", (size,))
                if freq >= 1:
                    if p.kind == "s3fifo":
                        self.db.execute("UPDATE entries SET freq = 0 WHERE id = ?", (item,))
                        self._place(item, size, small=False)
                    else:
                        self.db.execute("UPDATE entries SET freq = freq + 1 WHERE id = ?", (item,))
                        self._push(item, size)
                    continue
                self._evict(item)
                if p.kind == "s3fifo":
                    self._remember_plain(item, max(1, self._count()))
                else:
                    self._remember(item, 1)
                return str(item)
            if main_empty:
                return None
            if p.kind == "s3fifo":
                item, size, freq = self.db.execute(
                    "SELECT id, size, freq FROM entries WHERE small = 0 ORDER BY gen LIMIT 1"
                ).fetchone()
                if freq > 0:
                    cost = p.large_lap_cost if p.large is not None and size > p.large else 1
                    self.db.execute("UPDATE entries SET freq = ? WHERE id = ?", (max(0, freq - cost), item))
                    self._place(item, size, small=False)
                    continue
                self._evict(item)
                if p.ghost_main_evictions:
                    self._remember_plain(item, max(1, self._count()))
                return str(item)
            item, size, freq, pushed, priority = self.db.execute(
                "SELECT id, size, freq, pushed, priority FROM entries WHERE small = 0 ORDER BY priority, gen LIMIT 1"
            ).fetchone()
            if freq != pushed:
                self._push(item, size)  # hit since it was queued: back in at the current clock
                continue
            self.db.execute("UPDATE policy_state SET clock = ?", (priority,))
            self._evict(item)
            self._remember(item, pushed)
            return str(item)

    # ---- helpers mirroring the in-memory tiers -------------------------------------------------

    def _evict(self, item: str) -> None:
        # The caller has settled small_used: out of the small queue first, so ``remove`` (called by ``forget``)
        # does not count it off again.
        self.db.execute("UPDATE entries SET small = 0 WHERE id = ?", (item,))
        self._forget(item)

    def _place(self, item: str, size: int, *, small: bool) -> None:
        self.db.execute("UPDATE entries SET small = ?, gen = ? WHERE id = ?", (int(small), self._next_gen(), item))
        if small:
            self.db.execute("UPDATE policy_state SET small_used = small_used + ?", (size,))

    def _push(self, item: str, size: int) -> None:
        (freq,) = self.db.execute("SELECT freq FROM entries WHERE id = ?", (item,)).fetchone()
        frequency = min(freq, self.p.max_freq)
        priority = (
            self._state("clock") + min(frequency, self.p.max_freq) ** self.p.frequency_weight
            / (size or 1) ** self.p.size_weight
        )  # fmt: skip
        self.db.execute(
            "UPDATE entries SET small = 0, gen = ?, freq = ?, pushed = ?, priority = ? WHERE id = ?",
            (self._next_gen(), frequency, frequency, priority, item),
        )

    def _remember(self, item: str, requests: int) -> None:
        """The GDSF tier's ghost: (re)inserted at the end with the requests it had."""
        self.db.execute(
            "INSERT OR REPLACE INTO ghosts (id, requests, gen) VALUES (?, ?, ?)", (item, requests, self._next_gen())
        )
        self._trim_ghosts(self.p.ghost_factor * self._count() + 64)

    def _remember_plain(self, item: str, limit: int) -> None:
        """S3-FIFO's ghost: an id already there keeps its place."""
        self.db.execute("INSERT OR IGNORE INTO ghosts (id, requests, gen) VALUES (?, 0, ?)", (item, self._next_gen()))
        self._trim_ghosts(limit)
