"""Which cached variants to drop when the cache directory outgrows its budget (least recently used).

Pure bookkeeping over (path, size); the variant cache does the unlinking. Keeping the cache under a
budget matters in Kubernetes: an emptyDir that outgrows its sizeLimit gets the whole pod evicted.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path


class DiskBudget:
    def __init__(self, limit_bytes: int) -> None:
        self.limit = limit_bytes
        self.used = 0
        self._entries: OrderedDict[Path, int] = OrderedDict()  # least recently used first

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, path: Path, size: int) -> list[Path]:
        """Record a new file (or a use of a known one); returns the files to delete to fit the budget.
        The newest file is never among them, even when it alone is over the budget."""
        previous = self._entries.pop(path, None)
        if previous is not None:
            self.used -= previous
        self._entries[path] = size
        self.used += size
        evicted = []
        while self.used > self.limit and len(self._entries) > 1:
            oldest, oldest_size = self._entries.popitem(last=False)
            self.used -= oldest_size
            evicted.append(oldest)
        return evicted

    def touch(self, path: Path) -> None:
        if path in self._entries:
            self._entries.move_to_end(path)

    def forget_under(self, directory: Path) -> None:
        for path in [p for p in self._entries if directory in p.parents]:
            self.used -= self._entries.pop(path)
