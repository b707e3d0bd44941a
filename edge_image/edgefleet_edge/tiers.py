"""Per-tier admission and eviction: whether to store a new object, and which stored objects to give up for it.

The store asks a tier whether it ``admits`` an object fetched from the origin, then ``add``s it and drops (or
demotes) whatever the tier hands back. The default, ``s3fifo-sa``, is S3-FIFO made size-aware, chosen on the
e-commerce trace (``bench/hitratio.py``, seeds 1-3, 1% of the unique bytes: about +10.6 points of object hit
ratio over LRU and a byte hit ratio 0.4 points above plain S3-FIFO's):

- admission: an object larger than 0.05% of the tier is stored on its second request within the ghost's
  memory; its first only leaves a ghost entry. Crawlers' one-hit wonders, which are large, stop flushing the
  cache. Small objects are stored on their first request.
- eviction: S3-FIFO with a 2% probation queue; in the main queue a large object spends two units of
  frequency per reinsertion lap and a small one spends one (value per byte, GDSF-like, in O(1)); every
  eviction leaves a ghost, so a recently evicted object is stored again on its next request.

``s3fifo`` (plain S3-FIFO as published) and ``lru`` (``ByteLRU``) remain selectable as baselines.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Protocol


class TierPolicy(Protocol):
    capacity: int
    used: int

    def __contains__(self, item: str) -> bool: ...

    def __len__(self) -> int: ...

    def touch(self, item: str) -> None:
        """A hit."""

    def admits(self, item: str, size: int) -> bool:
        """Whether an object new to the cache should be stored at all (admission), asked before ``add``.

        May remember that it was asked (a refusal can be what lets the next request in), so ask once per
        origin fetch, never for an object that is only moving between tiers.
        """

    def add(self, item: str, size: int) -> list[str]:
        """Admit ``item``; the items evicted to make room (already removed from the policy)."""

    def remove(self, item: str) -> None:
        """Forget ``item`` (purge, replacement); a no-op when absent."""


class ByteLRU:
    """Least-recently-used order with byte accounting (the baseline tier policy)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self._sizes: OrderedDict[str, int] = OrderedDict()

    def __contains__(self, item: str) -> bool:
        return item in self._sizes

    def __len__(self) -> int:
        return len(self._sizes)

    def touch(self, item: str) -> None:
        if item in self._sizes:
            self._sizes.move_to_end(item)

    def admits(self, item: str, size: int) -> bool:
        return size <= self.capacity

    def add(self, item: str, size: int) -> list[str]:
        """Admit ``item``; the items evicted to make room (already removed from this policy)."""
        self.remove(item)
        victims = []
        while self._sizes and self.used + size > self.capacity:
            victim, victim_size = self._sizes.popitem(last=False)
            self.used -= victim_size
            victims.append(victim)
        self._sizes[item] = size
        self.used += size
        return victims

    def remove(self, item: str) -> None:
        size = self._sizes.pop(item, None)
        if size is not None:
            self.used -= size


class S3FIFOTier:
    """S3-FIFO (Yang et al., SOSP 2023) in bytes: a small FIFO on probation, a main FIFO with reinsertion for
    reused objects, and a ghost list of recently evicted keys, which skip probation when they come back.

    Size-aware options (all off for plain S3-FIFO): ``large_fraction`` makes an object over that fraction of
    the capacity wait for its second request (``admits``); ``large_lap_cost`` is the frequency a large object
    spends per lap of the main queue; ``ghost_main_evictions`` records main-queue evictions in the ghost too.

    Removals are lazy: queues hold (item, generation) and stale pairs are skipped when they surface; the queues
    are compacted when stale pairs outnumber live ones, so every operation stays O(1) amortised. Invariants:
    ``used <= capacity`` after every ``add``; the ghost holds at most max(objects, capacity // large) keys.
    """

    def __init__(
        self,
        capacity: int,
        small_fraction: float = 0.1,
        large_fraction: float | None = None,
        *,
        max_freq: int = 3,
        large_lap_cost: int = 1,
        ghost_main_evictions: bool = False,
    ) -> None:
        self.capacity = capacity
        self.used = 0
        self.small_capacity = max(1, int(capacity * small_fraction))
        self.large = max(1, int(capacity * large_fraction)) if large_fraction else None
        self.max_freq = max_freq
        self.large_lap_cost = large_lap_cost
        self.ghost_main_evictions = ghost_main_evictions
        self._small: deque[tuple[str, int]] = deque()
        self._main: deque[tuple[str, int]] = deque()
        self._small_used = 0
        self._size: dict[str, int] = {}
        self._freq: dict[str, int] = {}
        self._where: dict[str, tuple[str, int]] = {}
        self._ghost: OrderedDict[str, None] = OrderedDict()
        self._generation = 0

    def __contains__(self, item: str) -> bool:
        return item in self._size

    def __len__(self) -> int:
        return len(self._size)

    @property
    def ghosts(self) -> int:
        """Keys remembered without their bodies (bounded, see the class invariants)."""
        return len(self._ghost)

    def is_large(self, size: int) -> bool:
        return self.large is not None and size > self.large

    def touch(self, item: str) -> None:
        frequency = self._freq.get(item)  # on every hit: one lookup, no min()
        if frequency is not None and frequency < self.max_freq:
            self._freq[item] = frequency + 1

    def admits(self, item: str, size: int) -> bool:
        if size > self.capacity:
            return False
        if self.large is None or size <= self.large or item in self._ghost or item in self._size:
            return True
        self._ghost[item] = None
        while len(self._ghost) > max(len(self._size), self.capacity // self.large):
            self._ghost.popitem(last=False)
        return False

    def _place(self, item: str, queue: str) -> None:
        self._generation += 1
        self._where[item] = (queue, self._generation)
        (self._small if queue == "small" else self._main).append((item, self._generation))
        if queue == "small":
            self._small_used += self._size[item]

    def add(self, item: str, size: int) -> list[str]:
        self.remove(item)
        victims: list[str] = []
        while self._size and self.used + size > self.capacity:
            victim = self._evict_one()
            if victim is None:
                break
            victims.append(victim)
        self._size[item], self._freq[item] = size, 0
        self.used += size
        if item in self._ghost:
            del self._ghost[item]
            self._place(item, "main")
        else:
            self._place(item, "small")
        return victims

    def remove(self, item: str) -> None:
        size = self._size.pop(item, None)
        if size is None:
            return
        self.used -= size
        del self._freq[item]
        queue, _ = self._where.pop(item)
        if queue == "small":
            self._small_used -= size
        if len(self._small) + len(self._main) > 2 * len(self._size) + 64:
            self._compact()

    def _compact(self) -> None:
        """Drop stale pairs (left by removals); O(n) once per n removals."""
        self._small = deque(entry for entry in self._small if self._current(entry, "small"))
        self._main = deque(entry for entry in self._main if self._current(entry, "main"))

    def _current(self, entry: tuple[str, int], queue: str) -> bool:
        item, generation = entry
        return self._where.get(item) == (queue, generation)

    def _remember(self, item: str) -> None:
        self._ghost[item] = None
        while len(self._ghost) > max(1, len(self._size)):
            self._ghost.popitem(last=False)

    def _evict_one(self) -> str | None:
        # Terminates: every step pops a pair; a pair is pushed back only when its item moves from small to
        # main (once) or spends frequency in main (which only ``touch`` raises, and it is not called here).
        while True:
            if self._small and (self._small_used >= self.small_capacity or not self._main):
                entry = self._small.popleft()
                if not self._current(entry, "small"):
                    continue
                item = entry[0]
                self._small_used -= self._size[item]
                if self._freq[item] >= 1:
                    self._freq[item] = 0
                    self._place(item, "main")  # reused on probation: promote
                    continue
                self._forget(item)
                self._remember(item)
                return item
            if not self._main:
                return None
            entry = self._main.popleft()
            if not self._current(entry, "main"):
                continue
            item = entry[0]
            if self._freq[item] > 0:
                cost = self.large_lap_cost if self.is_large(self._size[item]) else 1
                self._freq[item] = max(0, self._freq[item] - cost)
                self._place(item, "main")  # reinsertion: reused objects get another lap
                continue
            self._forget(item)
            if self.ghost_main_evictions:
                self._remember(item)
            return item

    def _forget(self, item: str) -> None:
        self.used -= self._size.pop(item)
        del self._freq[item]
        del self._where[item]


POLICY_NAMES = ("s3fifo-sa", "s3fifo", "lru")
"""Tier policies the edge can run (``--cache-policy``); the first is the default."""

DEFAULT_POLICY = POLICY_NAMES[0]


def make_tier_policy(name: str, capacity: int) -> TierPolicy:
    if name == "lru":
        return ByteLRU(capacity)
    if name == "s3fifo":
        return S3FIFOTier(capacity)
    if name == "s3fifo-sa":
        # Each choice measured on the e-commerce trace, seeds 1-3 (bench/README.md, "Cache policy").
        return S3FIFOTier(
            capacity,
            small_fraction=0.02,
            large_fraction=0.0005,
            max_freq=15,
            large_lap_cost=2,
            ghost_main_evictions=True,
        )
    raise ValueError(f"unknown cache policy {name!r}; choose {', '.join(POLICY_NAMES)}")
