"""Where a consumer remembers the last purge it applied, so a restart resumes exactly there."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol

import redis.asyncio as aioredis


class Checkpoint(Protocol):
    async def load(self) -> str | None:
        """The last applied entry id, or None if this member never applied one."""

    async def save(self, entry_id: str) -> None:
        """Remember ``entry_id`` durably before it is acknowledged."""


class FileCheckpoint:
    """A file next to the cache it describes: if the cache survives a restart, so does this.

    Written atomically (temp file, fsync, rename): a crash leaves the old id or the new one, never a torn one.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    async def load(self) -> str | None:
        try:
            text = self.path.read_text().strip()
        except FileNotFoundError:
            return None
        return text or None

    async def save(self, entry_id: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".checkpoint-")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(entry_id)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class RedisCheckpoint:
    """A key in Redis, for consumers without a durable cache (tests, stand-ins for edges)."""

    def __init__(self, client: aioredis.Redis, key: str) -> None:
        self.client = client
        self.key = key

    async def load(self) -> str | None:
        value = await self.client.get(self.key)
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def save(self, entry_id: str) -> None:
        await self.client.set(self.key, entry_id)


class MemoryCheckpoint:
    """Forgets on restart: for a memory-only cache, which restarts empty anyway."""

    def __init__(self) -> None:
        self._value: str | None = None

    async def load(self) -> str | None:
        return self._value

    async def save(self, entry_id: str) -> None:
        self._value = entry_id
