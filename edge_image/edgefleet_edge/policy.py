"""Eviction and admission policies, sized in bytes, compared on traces by ``bench/hitratio.py``.

Pure and O(1) amortised per access. Each policy answers one question per request — was it a hit? — and on a
miss decides whether to admit the object and what to evict for it. ``capacity`` and ``used`` are bytes;
``used <= capacity`` always holds, and an object larger than the capacity is never admitted.

- ``LRU``: the baseline.
- ``S3FIFO``: Yang et al., SOSP 2023 — a small FIFO (10%) filters one-hit wonders, a main FIFO with
  reinsertion keeps what was reused, and a ghost list of recently filtered keys lets returning objects
  skip the filter.
- ``WTinyLFU``: Einziger et al. — a small LRU window, then admission into the main segmented LRU only if
  the candidate's estimated frequency (count-min sketch with periodic halving) beats the victims'.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict, deque
from collections.abc import Hashable
from typing import Protocol


class Policy(Protocol):
    capacity: int
    used: int

    def access(self, key: Hashable, size: int) -> bool:
        """Record a request; True on a hit. On a miss the object is offered for admission."""


class LRU:
    def __init__(self, capacity: int) -> None:
        self.capacity, self.used = capacity, 0
        self._items: OrderedDict[Hashable, int] = OrderedDict()

    def access(self, key: Hashable, size: int) -> bool:
        if key in self._items:
            self._items.move_to_end(key)
            return True
        if size > self.capacity:
            return False
        while self.used + size > self.capacity:
            _, evicted = self._items.popitem(last=False)
            self.used -= evicted
        self._items[key] = size
        self.used += size
        return False


class S3FIFO:
    def __init__(self, capacity: int, small_fraction: float = 0.1) -> None:
        self.capacity, self.used = capacity, 0
        self.small_capacity = max(1, int(capacity * small_fraction))
        self._small: deque[Hashable] = deque()
        self._main: deque[Hashable] = deque()
        self._small_used = 0
        self._size: dict[Hashable, int] = {}
        self._freq: dict[Hashable, int] = {}
        self._in_small: set[Hashable] = set()
        self._ghost: OrderedDict[Hashable, None] = OrderedDict()
        self._ghost_limit = 1

    def access(self, key: Hashable, size: int) -> bool:
        if key in self._size:
            self._freq[key] = min(3, self._freq[key] + 1)
            return True
        if size > self.capacity:
            return False
        while self.used + size > self.capacity:
            self._evict()
        self._size[key], self._freq[key] = size, 0
        self.used += size
        if key in self._ghost:
            del self._ghost[key]
            self._main.append(key)
        else:
            self._small.append(key)
            self._in_small.add(key)
            self._small_used += size
        self._ghost_limit = max(self._ghost_limit, len(self._main))
        return False

    def _evict(self) -> None:
        if self._small_used >= self.small_capacity or not self._main:
            self._evict_small()
        else:
            self._evict_main()

    def _evict_small(self) -> None:
        while self._small:
            key = self._small.popleft()
            self._in_small.discard(key)
            self._small_used -= self._size[key]
            if self._freq[key] >= 1:
                self._freq[key] = 0
                self._main.append(key)  # reused while on probation: promote, no bytes freed yet
                if self._small_used < self.small_capacity and self._main:
                    self._evict_main()
                    return
                continue
            self._drop(key)
            self._ghost[key] = None
            while len(self._ghost) > self._ghost_limit:
                self._ghost.popitem(last=False)
            return
        self._evict_main()

    def _evict_main(self) -> None:
        while self._main:
            key = self._main.popleft()
            if self._freq[key] > 0:
                self._freq[key] -= 1
                self._main.append(key)  # reinsertion: reused objects get another lap
                continue
            self._drop(key)
            return

    def _drop(self, key: Hashable) -> None:
        self.used -= self._size.pop(key)
        del self._freq[key]


class S3FIFOSizeAware(S3FIFO):
    """S3-FIFO whose first sight of a large object only leaves a ghost: it is cached on its second request.

    "Large" is more than ``large_fraction`` of the capacity (0.05% by default, 28 KB at 1% of the
    e-commerce trace). Crawlers' big one-hit wonders then never displace anything.
    """

    def __init__(self, capacity: int, large_fraction: float = 0.0005) -> None:
        super().__init__(capacity)
        self.large = max(1, int(capacity * large_fraction))

    def access(self, key: Hashable, size: int) -> bool:
        if key not in self._size and size > self.large and key not in self._ghost:
            self._ghost[key] = None
            # Remember as many first sights as large objects would fit: enough to recognise a return.
            while len(self._ghost) > max(len(self._size), self.capacity // self.large):
                self._ghost.popitem(last=False)
            return False
        return super().access(key, size)


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
        self.window = LRU(max(1, int(capacity * window_fraction)))
        self.main_capacity = capacity - self.window.capacity
        self._main: OrderedDict[Hashable, int] = OrderedDict()
        self._main_used = 0
        self.sketch = _Sketch(expected_objects)

    def access(self, key: Hashable, size: int) -> bool:
        self.sketch.add(key)
        if key in self.window._items:
            self.window.access(key, size)
            return True
        if key in self._main:
            self._main.move_to_end(key)
            return True
        if size > self.main_capacity:
            return False
        # The window is an LRU whose evictions are the candidates for the main space.
        before = dict(self.window._items)
        self.window.access(key, size)
        for candidate, candidate_size in before.items():
            if candidate not in self.window._items:
                self._offer(candidate, candidate_size)
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


POLICIES = {"lru": LRU, "s3fifo": S3FIFO, "s3fifo-sa": S3FIFOSizeAware, "wtinylfu": WTinyLFU}


def make_policy(name: str, capacity: int) -> Policy:
    try:
        return POLICIES[name](capacity)  # type: ignore[no-any-return]
    except KeyError as exc:
        raise ValueError(f"unknown policy {name!r}; choose from {', '.join(POLICIES)}") from exc
