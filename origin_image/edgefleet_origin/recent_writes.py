"""Writes this origin made itself, remembered briefly: when the bucket also notifies about them
(MinIO's webhook fires for every write, the origin's own included), the echo is not published twice.

An echo matches on key and ETag (a delete has none), so a later, different upload of the same key
through a presigned URL is still published. Bounded in entries and in age.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class RecentWrites:
    def __init__(self, ttl: float = 300.0, capacity: int = 4096, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.capacity = capacity
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str | None], float] = OrderedDict()

    def remember(self, key: str, etag: str | None) -> None:
        """``etag`` without quotes; None for a delete."""
        entry = (key, etag)
        self._entries.pop(entry, None)
        self._entries[entry] = self._clock()
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def is_echo(self, key: str, etag: str | None) -> bool:
        """True (once) when this change is one the origin made and already published."""
        entry = (key, etag.strip('"') if etag else None)
        written = self._entries.pop(entry, None)
        return written is not None and self._clock() - written <= self.ttl
