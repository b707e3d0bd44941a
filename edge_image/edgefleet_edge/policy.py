"""Eviction and admission policies, sized in bytes, compared on traces by ``bench/hitratio.py``.

Pure and O(1) amortised per access. Each policy answers one question per request — was it a hit? — and on a
miss decides whether to admit the object and what to evict for it. ``capacity`` and ``used`` are bytes;
``used <= capacity`` always holds, and an object larger than the capacity is never admitted.

- ``s3fifo-gdsf`` (the edge's default), ``s3fifo-sa``, ``s3fifo``, ``lru``: the store's own tier policies
  (``tiers.py``), replayed as they run, admission included. ``default`` names whichever is the edge's default,
  so rows can be compared across versions.
- ``gdsf`` (Cherkasova 1998), a reference only: evict the lowest ``clock + frequency / size``, the clock rising
  to each evicted priority; best in objects, gives bytes up for them.
- ``WTinyLFU``: Einziger et al. — a small LRU window, then admission into the main segmented LRU only if
  the candidate's estimated frequency (count-min sketch with periodic halving) beats the victims'.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import OrderedDict
from collections.abc import Hashable
from typing import Protocol

from .tiers import DEFAULT_POLICY, POLICY_NAMES, ByteLRU, TierPolicy, make_tier_policy


class Policy(Protocol):
    capacity: int

    @property
    def used(self) -> int: ...

    def access(self, key: Hashable, size: int) -> bool:
        """Record a request; True on a hit. On a miss the object is offered for admission."""


class TierReplay:
    """Replays a trace through a store tier policy: the bench measures exactly the code the edge runs."""

    def __init__(self, tier: TierPolicy) -> None:
        self.tier = tier
        self.capacity = tier.capacity

    @property
    def used(self) -> int:
        return self.tier.used

    def access(self, key: Hashable, size: int) -> bool:
        item = str(key)
        if item in self.tier:
            self.tier.touch(item)
            return True
        if self.tier.admits(item, size):
            self.tier.add(item, size)
        return False


class _Sketch:
    """Count-min sketch, 4 rows of 4-bit-like counters (capped at 15), halved every ``sample`` increments."""

    def __init__(self, width: int) -> None:
        self.width = max(64, width)
        self.rows = [[0] * self.width for _ in range(4)]
        self.additions = 0
        self.sample = 10 * self.width

    def _indexes(self, key: Hashable) -> list[int]:
        digest = hashlib.blake2b(repr(key).encode(), digest_size=16).digest()
        return [int.from_bytes(digest[i * 4 : i * 4 + 4], "little") % self.width for i in range(4)]

    def add(self, key: Hashable) -> None:
        for row, index in zip(self.rows, self._indexes(key), strict=True):
            if row[index] < 15:
                row[index] += 1
        self.additions += 1
        if self.additions >= self.sample:
            self.additions = 0
            for row in self.rows:
                for i, value in enumerate(row):
                    row[i] = value >> 1

    def estimate(self, key: Hashable) -> int:
        return min(row[index] for row, index in zip(self.rows, self._indexes(key), strict=True))


class WTinyLFU:
    def __init__(self, capacity: int, window_fraction: float = 0.01, expected_objects: int = 100_000) -> None:
        self.capacity, self.used = capacity, 0
        self.window = ByteLRU(max(1, int(capacity * window_fraction)))
        self.main_capacity = capacity - self.window.capacity
        self._main: OrderedDict[Hashable, int] = OrderedDict()
        self._main_used = 0
        self._window_sizes: dict[str, int] = {}
        self.sketch = _Sketch(expected_objects)

    def access(self, key: Hashable, size: int) -> bool:
        self.sketch.add(key)
        item = str(key)
        if item in self.window:
            self.window.touch(item)
            return True
        if item in self._main:
            self._main.move_to_end(item)
            return True
        if size > self.main_capacity:
            return False
        # The window is an LRU whose evictions are the candidates for the main space.
        if size > self.window.capacity:
            self._offer(item, size)  # too big for the window: straight to admission
        else:
            for candidate in self.window.add(item, size):
                self._offer(candidate, self._window_sizes.pop(candidate))
            self._window_sizes[item] = size
        self.used = self.window.used + self._main_used
        return False

    def _offer(self, candidate: Hashable, size: int) -> None:
        if size > self.main_capacity:
            return
        victims: list[tuple[Hashable, int]] = []
        room = self.main_capacity - self._main_used
        for key, key_size in self._main.items():
            if room >= size:
                break
            victims.append((key, key_size))
            room += key_size
        if room < size:
            return
        frequency = self.sketch.estimate(candidate)
        if victims and frequency <= max(self.sketch.estimate(k) for k, _ in victims):
            return  # the main space's least recent objects are used more often than this one
        for key, key_size in victims:
            del self._main[key]
            self._main_used -= key_size
        self._main[candidate] = size
        self._main_used += size


class GDSF:
    """Greedy-Dual-Size-Frequency with a lazy heap: a hit only counts; a stale entry is re-pushed when it surfaces."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self.used = capacity, 0
        self._clock = 0.0
        self._size: dict[Hashable, int] = {}
        self._freq: dict[Hashable, int] = {}
        self._heap: list[tuple[float, int, Hashable, int]] = []
        self._pushes = 0

    def access(self, key: Hashable, size: int) -> bool:
        if key in self._size:
            self._freq[key] += 1
            return True
        if size > self.capacity:
            return False
        while self.used + size > self.capacity:
            priority, _, victim, frequency = heapq.heappop(self._heap)
            if self._freq[victim] != frequency:
                self._push(victim)
                continue
            self._clock = priority
            self.used -= self._size.pop(victim)
            del self._freq[victim]
        self._size[key], self._freq[key] = size, 1
        self.used += size
        self._push(key)
        return False

    def _push(self, key: Hashable) -> None:
        self._pushes += 1
        priority = self._clock + self._freq[key] / self._size[key]
        heapq.heappush(self._heap, (priority, self._pushes, key, self._freq[key]))


POLICIES = (*POLICY_NAMES, "gdsf", "wtinylfu")


def resolve(name: str) -> str:
    """The policy a name stands for: ``default`` is the edge's default policy."""
    return DEFAULT_POLICY if name == "default" else name


def make_policy(name: str, capacity: int) -> Policy:
    name = resolve(name)
    if name == "wtinylfu":
        return WTinyLFU(capacity)
    if name == "gdsf":
        return GDSF(capacity)
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; choose from default, {', '.join(POLICIES)}")
    return TierReplay(make_tier_policy(name, capacity))
