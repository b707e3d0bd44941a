"""The disk tier runs the same policies as the memory tier, with their state in sqlite: same trace, same decisions."""

from __future__ import annotations

import random
import sqlite3

import pytest
from edgefleet_edge.disk_policy import POLICY_SCHEMA, PolicyParams, SqlPolicy
from edgefleet_edge.disk_tier import SCHEMA
from edgefleet_edge.policy import TierReplay
from edgefleet_edge.tiers import POLICY_NAMES, make_tier_policy


class SqlReplay:
    """The disk tier's bookkeeping around ``SqlPolicy``, without files: rows, sizes and totals."""

    def __init__(self, name: str, capacity: int) -> None:
        self.capacity = capacity
        self.db = sqlite3.connect(":memory:", isolation_level=None)
        for statement in (SCHEMA + POLICY_SCHEMA).split(";"):
            if statement.strip():
                self.db.execute(statement)
        self.policy = SqlPolicy(self.db, PolicyParams.of(name, capacity), self._forget, self._count)

    def _count(self) -> int:
        return int(self.db.execute("SELECT objects FROM totals").fetchone()[0])

    def _used(self) -> int:
        return int(self.db.execute("SELECT used FROM totals").fetchone()[0])

    def _forget(self, item: str) -> None:
        self.policy.remove(item)
        (size,) = self.db.execute("DELETE FROM entries WHERE id = ? RETURNING size", (item,)).fetchone()
        self.db.execute("UPDATE totals SET used = used - ?, objects = objects - 1", (size,))

    def access(self, item: str, size: int) -> bool:
        if self.db.execute("SELECT 1 FROM entries WHERE id = ?", (item,)).fetchone():
            self.policy.touch(item)
            return True
        if self.policy.admits(item, size):
            while self._used() + size > self.capacity and self.policy.evict_one() is not None:
                pass
            self.db.execute("INSERT INTO entries (id, key, path, file, size, meta) VALUES (?, '', '', '', ?, '')",
                            (item, size))  # fmt: skip
            self.db.execute("UPDATE totals SET used = used + ?, objects = objects + 1", (size,))
            self.policy.add(item, size)
        return False


def trace(seed: int, length: int) -> list[tuple[str, int]]:
    """Zipf-like popularity over 400 objects, sizes from 100 B to 60 KB (a few far larger than the rest)."""
    rng = random.Random(seed)
    sizes = {n: rng.choice([100, 800, 3_000, 12_000]) if n % 37 else 60_000 for n in range(400)}
    weights = [1 / (n + 1) ** 0.9 for n in range(400)]
    return [(f"o{n}", sizes[n]) for n in rng.choices(range(400), weights, k=length)]


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_disk_policy_decides_as_the_memory_tier_policy_of_the_same_name(name: str) -> None:
    capacity = 200_000
    memory, disk = TierReplay(make_tier_policy(name, capacity)), SqlReplay(name, capacity)
    requests = trace(7, 3_000)
    memory_hits = [memory.access(item, size) for item, size in requests]
    disk_hits = [disk.access(item, size) for item, size in requests]
    assert 0 < sum(memory_hits) < len(requests), "the trace hits and misses"
    assert disk_hits == memory_hits
    assert disk._used() == memory.used <= capacity
