"""The memory tier of one process: entries with their bodies, under a byte limit, evicted by the chosen policy."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from .entry import Entry
from .purge_selector import PurgeSelector
from .tiers import make_tier_policy


class MemoryTier:
    def __init__(self, capacity: int, policy: str) -> None:
        self.policy = make_tier_policy(policy, capacity)
        self.capacity = capacity
        self.max_object = max(1, capacity // 8)
        """Objects larger than this are not held here: one object never takes more than an eighth of the tier."""
        self.entries: dict[str, Entry] = {}
        self.by_key: dict[str, set[str]] = {}
        self.evictions = 0
        self.touch: Callable[[str], None] = self.policy.touch  # bound once: called on every memory hit
        self.hits: dict[str, int] = {}
        """Hits since ``take_hits``, by entry id: this tier's own once ``count_hits`` is on, and those ``tally``ed."""

    def count_hits(self) -> None:
        """Also tally every hit by entry id, for a tier below that never sees them (``Store.flush_hits``)."""
        policy_touch, hits = self.policy.touch, self.hits

        def touch(entry_id: str) -> None:
            policy_touch(entry_id)
            hits[entry_id] = hits.get(entry_id, 0) + 1

        self.touch = touch

    def tally(self, entry_id: str) -> None:
        """Count a hit served elsewhere (a disk hit) with this tier's, for the same fold-in."""
        self.hits[entry_id] = self.hits.get(entry_id, 0) + 1

    def take_hits(self) -> dict[str, int]:
        taken = dict(self.hits)
        self.hits.clear()
        return taken

    @property
    def used(self) -> int:
        return self.policy.used

    def __len__(self) -> int:
        return len(self.entries)

    def holds(self, size: int) -> bool:
        """Whether an object of ``size`` bytes may be kept here."""
        return size <= self.max_object and size <= self.capacity

    def admits(self, entry_id: str, size: int) -> bool:
        return self.policy.admits(entry_id, size)

    def get(self, entry_id: str) -> Entry | None:
        entry = self.entries.get(entry_id)
        if entry is not None:
            self.touch(entry_id)
        return entry

    def variants(self, key: str) -> Iterator[Entry]:
        for entry_id in self.by_key.get(key, ()):
            yield self.entries[entry_id]

    def keep(self, entry: Entry, body: bytes) -> None:
        """Hold ``entry`` with ``body``, evicting what the policy gives up for it."""
        self.drop(entry.id)
        entry.body, entry.tier = body, "memory"
        self.entries[entry.id] = entry
        self.by_key.setdefault(entry.key, set()).add(entry.id)
        for victim in self.policy.add(entry.id, entry.size):
            self._unindex(victim)
            self.evictions += 1

    def drop(self, entry_id: str) -> bool:
        if entry_id not in self.entries:
            return False
        self.policy.remove(entry_id)
        self._unindex(entry_id)
        return True

    def drop_key(self, key: str) -> int:
        ids = list(self.by_key.get(key, ()))
        for entry_id in ids:
            self.drop(entry_id)
        return len(ids)

    def _unindex(self, entry_id: str) -> None:
        entry = self.entries.pop(entry_id, None)
        if entry is None:
            return
        members = self.by_key.get(entry.key)
        if members is not None:
            members.discard(entry_id)
            if not members:
                del self.by_key[entry.key]

    def matching(self, selector: PurgeSelector) -> set[str]:
        # A scan: purges are rare, and the tier holds at most memory / mean object size entries.
        return {
            entry_id for entry_id, entry in self.entries.items() if selector.matches(entry.path, entry.surrogate_keys)
        }
