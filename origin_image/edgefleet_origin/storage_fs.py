"""Filesystem storage: objects are files under a root; metadata is a sidecar JSON per object.

Layout under the root: ``<key>`` holds the bytes, ``.meta/<key>.json`` the metadata, ``.staging/`` the
uploads in flight. Keys cannot start a segment with '.', so neither directory is reachable as a key.

A sidecar records the size and mtime of the bytes it describes; its ETag (the content's SHA-256) is used
only while they still match, so a file replaced by hand gets a fresh validator instead of a stale one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from edgefleet_origin.errors import Conflict, NotImplementedHere, ObjectChanged, ObjectNotFound, StorageError
from edgefleet_origin.objects import ObjectInfo, ObjectMeta
from edgefleet_origin.ranges import ByteRange
from edgefleet_origin.staging import StagedUpload
from edgefleet_origin.storage import ObjectReader

log = logging.getLogger(__name__)

META_DIR = ".meta"
STAGING_DIR = ".staging"


class FileStorage:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    @property
    def description(self) -> str:
        return f"file://{self.root}"

    @property
    def staging_dir(self) -> Path:
        return self.root / STAGING_DIR

    def start(self) -> None:
        """Create the root and the private directories (blocking; call at start-up)."""
        try:
            for directory in (self.root, self.root / META_DIR, self.staging_dir):
                directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create {self.root}: {exc.strerror}", operation="start") from exc

    def local_path(self, key: str) -> Path | None:
        return self.root / key

    async def stat(self, key: str) -> ObjectInfo:
        return await asyncio.to_thread(self._stat, key)

    async def open(self, info: ObjectInfo, byte_range: ByteRange | None) -> ObjectReader:
        return await asyncio.to_thread(self._open, info, byte_range)

    async def put(self, key: str, staged: StagedUpload, meta: ObjectMeta) -> ObjectInfo:
        return await asyncio.to_thread(self._put, key, staged, meta)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete, key)

    async def list_objects(self, prefix: str, limit: int) -> tuple[list[ObjectInfo], bool]:
        return await asyncio.to_thread(self._list, prefix, limit)

    async def presigned_put_url(self, key: str, expires: timedelta) -> str:
        raise NotImplementedHere(
            "presigned upload URLs need S3 storage; with filesystem storage use PUT /api/files/{key}"
        )

    async def check(self) -> None:
        def probe() -> None:
            if not self.root.is_dir() or not os.access(self.staging_dir, os.W_OK):
                raise StorageError("the storage directory is not writable", operation="check")

        await asyncio.to_thread(probe)

    async def close(self) -> None:
        return None

    # ---- blocking parts, run in threads ----------------------------------------------------------

    def _sidecar(self, key: str) -> Path:
        return self.root / META_DIR / f"{key}.json"

    def _stat(self, key: str) -> ObjectInfo:
        path = self.root / key
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(key) from None
        except OSError as exc:
            raise StorageError(f"cannot stat {key!r}: {exc.strerror}", operation="stat") from exc
        if not path.is_file():
            raise ObjectNotFound(key)
        sidecar = self._read_sidecar(key)
        fresh = sidecar.get("size") == st.st_size and sidecar.get("mtime_ns") == st.st_mtime_ns
        etag = str(sidecar["sha256"]) if fresh and "sha256" in sidecar else f"{st.st_size:x}-{st.st_mtime_ns:x}"
        meta = ObjectMeta.from_user_metadata(key, str(sidecar.get("content_type") or ""), sidecar.get("metadata") or {})
        modified = datetime.fromtimestamp(st.st_mtime, UTC)
        return ObjectInfo(key=key, size=st.st_size, etag=etag, last_modified=modified, meta=meta)

    def _read_sidecar(self, key: str) -> dict[str, Any]:
        try:
            data = json.loads(self._sidecar(key).read_text())
        except (FileNotFoundError, NotADirectoryError):
            return {}
        except (OSError, ValueError) as exc:
            log.warning("Ignored unreadable metadata for %s: %s", key, exc)
            return {}
        return data if isinstance(data, dict) else {}

    def _open(self, info: ObjectInfo, byte_range: ByteRange | None) -> ObjectReader:
        key = info.key
        try:
            raw = (self.root / key).open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectChanged(key) from None
        except OSError as exc:
            raise StorageError(f"cannot open {key!r}: {exc.strerror}", operation="read") from exc
        st = os.fstat(raw.fileno())
        if st.st_size != info.size or datetime.fromtimestamp(st.st_mtime, UTC) != info.last_modified:
            raw.close()
            raise ObjectChanged(key)
        if byte_range is None:
            remaining = st.st_size
        else:
            raw.seek(byte_range.start)
            remaining = byte_range.length
        return ObjectReader(raw, remaining, raw.close)

    def _put(self, key: str, staged: StagedUpload, meta: ObjectMeta) -> ObjectInfo:
        target = self.root / key
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir():
                raise Conflict(f"{key!r} is a prefix of other objects; it cannot also be an object")
            st = staged.path.stat()
            # The sidecar goes first and names the staged file's size and mtime, which the rename keeps:
            # a reader never pairs new bytes with an old ETag, at worst old bytes with a computed one.
            self._write_sidecar(key, meta, staged, st.st_mtime_ns)
            os.replace(staged.path, target)
        except (NotADirectoryError, FileExistsError):
            staged.discard()
            raise Conflict(f"a prefix of {key!r} is an object; it cannot also be a directory") from None
        except Conflict:
            staged.discard()
            raise
        except OSError as exc:
            staged.discard()
            raise StorageError(f"cannot store {key!r}: {exc.strerror}", operation="write") from exc
        return self._stat(key)

    def _write_sidecar(self, key: str, meta: ObjectMeta, staged: StagedUpload, mtime_ns: int) -> None:
        sidecar = self._sidecar(key)
        sidecar.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "content_type": meta.content_type,
            "metadata": meta.user_metadata(),
            "sha256": staged.sha256,
            "size": staged.size,
            "mtime_ns": mtime_ns,
        }
        temporary = self.staging_dir / f"{staged.path.name}.meta"
        temporary.write_text(json.dumps(document, sort_keys=True))
        os.replace(temporary, sidecar)

    def _delete(self, key: str) -> None:
        try:
            (self.root / key).unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(key) from None
        except OSError as exc:
            raise StorageError(f"cannot delete {key!r}: {exc.strerror}", operation="delete") from exc
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            self._sidecar(key).unlink()
        self._prune_empty_parents(self.root / key)
        self._prune_empty_parents(self._sidecar(key))

    def _prune_empty_parents(self, path: Path) -> None:
        """Remove directories a delete left empty, so the key can later be used as a plain object."""
        stop = {self.root, self.root / META_DIR}
        parent = path.parent
        while parent not in stop and self.root in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                return
            parent = parent.parent

    def _list(self, prefix: str, limit: int) -> tuple[list[ObjectInfo], bool]:
        # Walk only the deepest directory the prefix names, in sorted order, and stop at limit + 1.
        base_dir = prefix.rpartition("/")[0]
        start = self.root / base_dir if base_dir else self.root
        found: list[ObjectInfo] = []
        for directory, subdirs, files in os.walk(start):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            relative = Path(directory).relative_to(self.root).as_posix()
            for name in sorted(files):
                if name.startswith("."):
                    continue
                key = name if relative == "." else f"{relative}/{name}"
                if not key.startswith(prefix):
                    continue
                with contextlib.suppress(ObjectNotFound):
                    found.append(self._stat(key))
                if len(found) > limit:
                    return found[:limit], True
        return found, False
