"""Per-tier admission and eviction: whether to store a new object, and which stored objects to give up for it.

The store asks a tier whether it ``admits`` an object fetched from the origin, then ``add``s it and drops (or
demotes) whatever the tier hands back; a hit calls ``touch``. The default, ``s3fifo-gdsf``, was chosen by
replaying a real CDN trace (``../shared/traces/cdn-adaptsize-sample.csv``) and the generated e-commerce traces
at 1%, 5% and 10% of their unique bytes (``bench/hitratio.py``; numbers in bench/README.md, "Cache policy"):
it is at least as good as both LRU and S3-FIFO in object and in byte hit ratio on each, and on the CDN trace
at 1% it closes more than half the object-hit-ratio distance from S3-FIFO to GDSF while keeping S3-FIFO's byte
hit ratio (GDSF gives bytes up for objects).

- S3-FIFO's filter: a new object waits in a small FIFO (5% of the tier); one not reused there leaves only a
  ghost key, and one that comes back within the ghost's memory skips probation.
- GDSF's order in the main queue: an object's priority is the clock plus ``frequency ** 1.5 / size ** 0.5``
  and the lowest goes first; the clock rises to each evicted priority, so objects not reused age out. The
  exponents weigh reuse over size: small objects win ties (object hit ratio), popular large ones stay (byte
  hit ratio). Hits only count (O(1)); priorities are recomputed lazily when an entry surfaces at eviction.
- Admission: a new object larger than 1/1024 of the tier and 128 times the mean size of the objects the tier
  was asked to store lately waits for its second request (a crawler's one-off huge files do not flush the
  tier); before any traffic, 1/1024 of the tier alone. Both scale: in a tier of few objects only an object
  far larger than the others is "large", never every object.

``s3fifo-sa`` (size-aware S3-FIFO, the default before), ``s3fifo`` (plain S3-FIFO as published) and ``lru``
(``ByteLRU``) remain selectable.
"""

from __future__ import annotations

import heapq
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


_HIT_COUNT_CAP = 255
"""Hits counted per object between two queueings (CPython caches the ints up to 256)."""


class S3FIFOGDSFTier:
    """S3-FIFO's probation queue and ghost in front of a GDSF-ordered main queue (see the module docstring).

    ``touch`` (every hit) is one dict lookup and one store. Removals are lazy: the small queue holds
    (item, generation) and the main heap (priority, generation, item, frequency when pushed); a pair whose
    generation is no longer the item's, or whose frequency has changed since (a hit), is skipped or re-pushed
    when it surfaces, and both are compacted when stale pairs outnumber live ones, so every operation is
    O(log n) amortised at worst. Invariants: ``used <= capacity`` after every ``add``; the ghost holds at most
    ``ghost_factor`` keys per stored object (plus a floor of 64).
    """

    def __init__(
        self,
        capacity: int,
        small_fraction: float = 0.05,
        *,
        frequency_weight: float = 1.5,
        size_weight: float = 0.5,
        max_freq: int = 32,
        ghost_factor: int = 3,
        large_share: int = 1024,
        large_multiple: int = 128,
    ) -> None:
        self.capacity = capacity
        self.used = 0
        self.small_capacity = max(1, int(capacity * small_fraction))
        self.frequency_weight = frequency_weight
        self.size_weight = size_weight
        self.max_freq = max_freq
        if not 0 < max_freq < _HIT_COUNT_CAP:
            raise ValueError(f"max_freq must be between 1 and {_HIT_COUNT_CAP - 1}: a hit must change the count")
        self.ghost_factor = ghost_factor
        self.large_floor = max(1, capacity // large_share)
        self.large_multiple = large_multiple
        self._asked = 0
        self._mean_asked = 0.0
        self._small: deque[tuple[str, int]] = deque()
        self._small_used = 0
        self._main: list[tuple[float, int, str, int]] = []
        self._clock = 0.0
        self._size: dict[str, int] = {}
        self._freq: dict[str, int] = {}
        self._where: dict[str, tuple[bool, int]] = {}  # item -> (in the small queue, generation)
        self._ghost: OrderedDict[str, int] = OrderedDict()  # evicted or declined item -> requests it had
        self._generation = 0

    def __contains__(self, item: str) -> bool:
        return item in self._size

    def __len__(self) -> int:
        return len(self._size)

    @property
    def ghosts(self) -> int:
        """Keys remembered without their bodies (bounded, see the class invariants)."""
        return len(self._ghost)

    @property
    def large(self) -> int:
        """Objects over this many bytes wait for their second request: over 1/``large_share`` of the tier and
        over ``large_multiple`` times the mean size of the objects asked about lately (the share alone before any)."""
        return max(self.large_floor, int(self.large_multiple * self._mean_asked))

    def touch(self, item: str) -> None:
        frequency = self._freq.get(item)  # on every hit: one lookup, one store, no allocation
        if frequency is not None and frequency < _HIT_COUNT_CAP:
            self._freq[item] = frequency + 1

    def admits(self, item: str, size: int) -> bool:
        if size > self.capacity:
            return False
        large = self.large
        # The mean of the sizes asked about: exact for the first 1,024, then a moving average over about as many.
        self._asked = min(self._asked + 1, 1024)
        self._mean_asked += (size - self._mean_asked) / self._asked
        if size <= large or item in self._ghost or item in self._size:
            return True
        self._remember(item, 0)
        return False

    def add(self, item: str, size: int) -> list[str]:
        self.remove(item)
        victims: list[str] = []
        while self._size and self.used + size > self.capacity:
            victim = self._evict_one()
            if victim is None:
                break
            victims.append(victim)
        self._size[item] = size
        self.used += size
        requests = self._ghost.pop(item, None)
        if requests is None:
            self._freq[item] = 0
            self._generation += 1
            self._where[item] = (True, self._generation)
            self._small.append((item, self._generation))
            self._small_used += size
        else:
            self._freq[item] = requests + 1  # back within the ghost's memory: skips probation
            self._push(item)
        return victims

    def remove(self, item: str) -> None:
        size = self._size.pop(item, None)
        if size is None:
            return
        self.used -= size
        del self._freq[item]
        in_small, _ = self._where.pop(item)
        if in_small:
            self._small_used -= size
        if len(self._small) + len(self._main) > 2 * len(self._size) + 64:
            self._compact()

    def _push(self, item: str) -> None:
        # Counted from ``max_freq`` at most, so a hit after this push always changes the count (the cap on
        # hits is higher), and the counts stay small ints that CPython never allocates.
        frequency = self._freq[item] = min(self._freq[item], self.max_freq)
        size = self._size[item] or 1  # an empty body (a 204, an empty file) still takes an index entry
        priority = self._clock + min(frequency, self.max_freq) ** self.frequency_weight / size**self.size_weight
        self._generation += 1
        self._where[item] = (False, self._generation)
        heapq.heappush(self._main, (priority, self._generation, item, frequency))

    def _compact(self) -> None:
        """Drop stale pairs (left by removals); O(n) once per n removals."""
        self._small = deque(entry for entry in self._small if self._where.get(entry[0]) == (True, entry[1]))
        self._main = [entry for entry in self._main if self._where.get(entry[2]) == (False, entry[1])]
        heapq.heapify(self._main)

    def _remember(self, item: str, requests: int) -> None:
        self._ghost[item] = requests
        self._ghost.move_to_end(item)
        while len(self._ghost) > self.ghost_factor * len(self._size) + 64:
            self._ghost.popitem(last=False)

    def _evict_one(self) -> str | None:
        # Terminates: every step pops a pair; one is pushed back only when its item moves from small to main
        # (once) or was hit since it was pushed (and ``touch`` is not called here).
        while True:
            if self._small and (self._small_used >= self.small_capacity or not self._main):
                item, generation = self._small.popleft()
                if self._where.get(item) != (True, generation):
                    continue
                self._small_used -= self._size[item]
                if self._freq[item] >= 1:
                    self._freq[item] += 1  # reused on probation: promote, counting its first request
                    self._push(item)
                    continue
                self._forget(item)
                self._remember(item, 1)
                return item
            if not self._main:
                return None
            priority, generation, item, frequency = heapq.heappop(self._main)
            if self._where.get(item) != (False, generation):
                continue
            if self._freq[item] != frequency:
                self._push(item)  # hit since it was queued: back in at the current clock
                continue
            self._clock = priority
            self._forget(item)
            self._remember(item, frequency)
            return item

    def _forget(self, item: str) -> None:
        self.used -= self._size.pop(item)
        del self._freq[item]
        del self._where[item]


POLICY_NAMES = ("s3fifo-gdsf", "s3fifo-sa", "s3fifo", "lru")
"""Tier policies the edge can run (``--cache-policy``); the first is the default."""

DEFAULT_POLICY = POLICY_NAMES[0]


def make_tier_policy(name: str, capacity: int) -> TierPolicy:
    if name == "lru":
        return ByteLRU(capacity)
    if name == "s3fifo":
        return S3FIFOTier(capacity)
    if name == "s3fifo-gdsf":
        # Each default measured on the CDN and e-commerce traces (bench/README.md, "Cache policy").
        return S3FIFOGDSFTier(capacity)
    if name == "s3fifo-sa":
        # Each choice measured on the e-commerce trace, seeds 1-3 (the default before s3fifo-gdsf).
        return S3FIFOTier(
            capacity,
            small_fraction=0.02,
            large_fraction=0.0005,
            max_freq=15,
            large_lap_cost=2,
            ghost_main_evictions=True,
        )
    raise ValueError(f"unknown cache policy {name!r}; choose {', '.join(POLICY_NAMES)}")
