"""A stored response: what every tier keeps about an object, and its identity."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

Tier = Literal["memory", "disk"]


@dataclass
class Entry:
    """A stored response. ``body`` is set for the memory tier; disk entries read ``body_path``."""

    key: str
    variant: str
    path: str
    status: int
    headers: list[tuple[str, str]]
    size: int
    request_time: float
    response_time: float
    initial_age: float
    lifetime: float
    stale_while_revalidate: float
    stale_if_error: float
    must_revalidate: bool
    vary: tuple[str, ...]
    surrogate_keys: tuple[str, ...]
    stale: bool = False
    """Soft-purged: serve only after revalidation."""
    grace_allowed: bool = True
    """Whether the edge's grace may serve it stale when the origin fails (``freshness.Policy.grace_allowed``)."""
    checksum: str = ""
    """CRC-32 of the body (``body_check``); empty for entries stored before checksums existed."""
    disk_file: str = ""
    """The disk tier's body file for this entry, when it is (or was, when read) on the disk tier."""
    body: bytes | None = field(default=None, repr=False)
    tier: Tier = "memory"
    hit_head: bytes | None = field(default=None, repr=False, compare=False)
    """The serialised response head for a plain hit, minus Age and Date (built once)."""

    @property
    def id(self) -> str:
        return hashlib.sha256(f"{self.key}\x00{self.variant}".encode()).hexdigest()[:32]

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None
