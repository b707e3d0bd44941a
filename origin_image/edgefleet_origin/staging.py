"""Receiving an upload body into a local staging file before it goes to storage.

Staging first means an upload that turns out too large (or is cut off) never touches the stored
object, the body is never held in memory, and the size and digests are known before storage sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from edgefleet_origin.errors import PayloadTooLarge

_WRITE_BATCH = 1 << 20  # write to disk in 1 MiB batches, one thread hop each


@dataclass(frozen=True)
class StagedUpload:
    path: Path
    size: int
    md5: str
    sha256: str

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


async def stage_body(chunks: AsyncIterator[bytes], directory: Path, max_size: int) -> StagedUpload:
    """Write ``chunks`` to a new file in ``directory``; raise ``PayloadTooLarge`` past ``max_size``."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=directory, prefix="upload-", suffix=".part")
    path = Path(name)
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            pending: list[bytes] = []
            pending_size = 0
            async for chunk in chunks:
                size += len(chunk)
                if size > max_size:
                    raise PayloadTooLarge(f"body is larger than the {max_size}-byte upload limit")
                md5.update(chunk)
                sha256.update(chunk)
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size >= _WRITE_BATCH:
                    await asyncio.to_thread(out.write, b"".join(pending))
                    pending, pending_size = [], 0
            await asyncio.to_thread(out.write, b"".join(pending))
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        raise
    return StagedUpload(path, size, md5.hexdigest(), sha256.hexdigest())
