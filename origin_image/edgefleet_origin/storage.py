"""The one small interface every storage backend implements (filesystem, S3/MinIO)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import IO, Protocol

from edgefleet_origin.objects import ObjectInfo, ObjectMeta
from edgefleet_origin.ranges import ByteRange
from edgefleet_origin.staging import StagedUpload


class ObjectReader:
    """Reads one object's bytes off the event loop: every blocking read runs in a thread."""

    def __init__(self, raw: IO[bytes], remaining: int, close: Callable[[], None]) -> None:
        self._raw = raw
        self._remaining = remaining
        self._close = close

    async def read(self, size: int = 256 * 1024) -> bytes:
        """The next chunk, or ``b""`` at the end of the requested bytes."""
        if self._remaining <= 0:
            return b""
        chunk = await asyncio.to_thread(self._raw.read, min(size, self._remaining))
        self._remaining -= len(chunk)
        if not chunk:
            self._remaining = 0
        return chunk

    async def close(self) -> None:
        await asyncio.to_thread(self._close)


class Storage(Protocol):
    """Objects by key. Keys reaching a backend have passed ``keys.validate_key``."""

    @property
    def description(self) -> str:
        """Where the objects are, for logs (no credentials)."""
        ...

    @property
    def staging_dir(self) -> Path:
        """Where uploads are staged; for the filesystem, on the same filesystem so a rename commits."""
        ...

    async def stat(self, key: str) -> ObjectInfo:
        """Raise ``ObjectNotFound`` when there is no such object."""
        ...

    async def open(self, info: ObjectInfo, byte_range: ByteRange | None) -> ObjectReader:
        """A reader of the version ``info`` describes, positioned at the start of ``byte_range`` (or of
        the object). Raise ``ObjectChanged`` when the stored object is no longer that version, so a
        response never pairs one version's headers with another's bytes."""
        ...

    async def put(self, key: str, staged: StagedUpload, meta: ObjectMeta) -> ObjectInfo:
        """Store ``staged`` (consuming it) as ``key``, replacing any object there."""
        ...

    async def delete(self, key: str) -> None: ...

    async def list_objects(self, prefix: str, limit: int) -> tuple[list[ObjectInfo], bool]:
        """Up to ``limit`` objects whose keys start with ``prefix``, and whether there are more."""
        ...

    async def presigned_put_url(self, key: str, expires: timedelta) -> str:
        """Raise ``NotImplementedHere`` when the backend cannot sign URLs."""
        ...

    def local_path(self, key: str) -> Path | None:
        """A path image workers can read directly, when the backend has one."""
        ...

    async def check(self) -> None:
        """Raise ``StorageError`` when the storage cannot be reached."""
        ...

    async def close(self) -> None: ...
