"""What a purge names, and the one rule for whether a stored object is named: used by every tier."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PurgeSelector:
    paths: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    everything: bool = False

    def matches(self, path: str, tags: tuple[str, ...]) -> bool:
        """Every variant of a named path, every path under a named prefix, every object with a named surrogate key."""
        return (
            self.everything
            or path in self.paths
            or (bool(self.prefixes) and path.startswith(self.prefixes))
            or any(tag in self.tags for tag in tags)
        )
