"""The edge's settings: one object, built at start-up from flags and ``EDGEFLEET_*`` variables, passed down."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .tiers import DEFAULT_POLICY


@dataclass(frozen=True)
class EdgeSettings:
    listen: tuple[str, int]
    admin_listen: tuple[str, int]
    origin: str
    memory: int
    disk: int
    cache_dir: Path | None
    name: str
    admin_token: str | None
    redis: str | None = None
    redis_password: str | None = None
    cluster: str = "default"
    grace: float = 3600.0
    allow_set_cookie: bool = False
    max_connections: int = 10_000
    idle_timeout: float = 75.0
    header_timeout: float = 10.0
    access_log: bool = True
    """One JSON line per request on standard output (``access_log.py``)."""
    cache_policy: str = DEFAULT_POLICY
    """Each tier's admission and eviction (``tiers.POLICY_NAMES``); the default was chosen on traces."""
