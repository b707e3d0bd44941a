"""S3/MinIO storage through the ``minio`` client; every blocking call runs in a thread.

Per-object metadata is S3 user metadata (``x-amz-meta-cache-max-age`` and friends, see ``objects.py``),
so objects uploaded with ``mc cp --attr`` or presigned URLs carry theirs the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TypeVar, cast
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error

from edgefleet_origin.errors import ObjectChanged, ObjectNotFound, StorageError
from edgefleet_origin.objects import ObjectInfo, ObjectMeta
from edgefleet_origin.ranges import ByteRange
from edgefleet_origin.staging import StagedUpload
from edgefleet_origin.storage import ObjectReader

log = logging.getLogger(__name__)

T = TypeVar("T")
_MISSING = {"NoSuchKey", "NoSuchObject", "ResourceNotFound"}
PART_SIZE = 64 * 1024 * 1024


@dataclass(frozen=True)
class S3Location:
    bucket: str
    endpoint: str  # host:port
    secure: bool
    region: str
    access_key: str
    secret_key: str
    public_url: str | None = None  # scheme://host:port clients use for presigned uploads, if not endpoint

    def __repr__(self) -> str:  # never print the credentials
        scheme = "https" if self.secure else "http"
        return f"S3Location(s3://{self.bucket} at {scheme}://{self.endpoint})"


class S3Storage:
    def __init__(self, location: S3Location, staging_dir: Path) -> None:
        self.location = location
        self._staging_dir = staging_dir
        # Bounded retries and timeouts: a dead endpoint must fail a request (and /readyz) quickly.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5.0, read=60.0),
            retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504)),
            maxsize=16,
        )
        self._client = Minio(
            location.endpoint,
            access_key=location.access_key,
            secret_key=location.secret_key,
            secure=location.secure,
            region=location.region,
            http_client=http,
        )
        self._http = http
        # Presigning is local computation (no request when the region is known), so a second client
        # configured with the public address signs URLs that clients outside the cluster can use.
        self._signer = self._client
        if location.public_url:
            public = urlsplit(location.public_url)
            self._signer = Minio(
                public.netloc,
                access_key=location.access_key,
                secret_key=location.secret_key,
                secure=public.scheme == "https",
                region=location.region,
                http_client=http,
            )

    @property
    def description(self) -> str:
        scheme = "https" if self.location.secure else "http"
        return f"s3://{self.location.bucket} at {scheme}://{self.location.endpoint}"

    @property
    def staging_dir(self) -> Path:
        return self._staging_dir

    def local_path(self, key: str) -> Path | None:
        return None

    async def stat(self, key: str) -> ObjectInfo:
        stat = await self._call("stat", key, lambda: self._client.stat_object(self.location.bucket, key))
        metadata = {k: v for k, v in (stat.metadata or {}).items() if k.lower().startswith("x-amz-meta-")}
        return ObjectInfo(
            key=key,
            size=int(stat.size or 0),
            etag=(stat.etag or "").strip('"'),
            last_modified=stat.last_modified or datetime.now(UTC),
            meta=ObjectMeta.from_user_metadata(key, stat.content_type or "", metadata),
        )

    async def open(self, info: ObjectInfo, byte_range: ByteRange | None) -> ObjectReader:
        key = info.key
        if byte_range is None:
            offset, length = 0, 0
        else:
            offset, length = byte_range.start, byte_range.length
        # If-Match pins the version whose headers the response already carries.
        version: dict[str, str | list[str] | tuple[str]] = {"If-Match": f'"{info.etag}"'}
        try:
            response = await self._call(
                "read",
                key,
                lambda: self._client.get_object(
                    self.location.bucket, key, offset=offset, length=length, request_headers=version
                ),
            )
        except ObjectNotFound:
            raise ObjectChanged(key) from None
        declared = response.headers.get("Content-Length")
        remaining = int(declared) if declared and declared.isdigit() else length or (1 << 62)

        def close() -> None:
            response.close()
            response.release_conn()

        return ObjectReader(cast(IO[bytes], response), remaining, close)

    async def put(self, key: str, staged: StagedUpload, meta: ObjectMeta) -> ObjectInfo:
        def upload() -> None:
            with staged.path.open("rb") as body:
                self._client.put_object(
                    self.location.bucket,
                    key,
                    body,
                    length=staged.size,
                    content_type=meta.content_type,
                    metadata=cast(dict[str, str | list[str] | tuple[str]], meta.user_metadata()),
                    part_size=PART_SIZE,
                )

        try:
            await self._call("write", key, upload)
        finally:
            staged.discard()
        return await self.stat(key)

    async def delete(self, key: str) -> None:
        await self._call("delete", key, lambda: self._client.remove_object(self.location.bucket, key))

    async def list_objects(self, prefix: str, limit: int) -> tuple[list[ObjectInfo], bool]:
        def collect() -> tuple[list[ObjectInfo], bool]:
            found: list[ObjectInfo] = []
            for item in self._client.list_objects(self.location.bucket, prefix=prefix, recursive=True):
                if item.is_dir or item.object_name is None:
                    continue
                if len(found) == limit:
                    return found, True
                found.append(
                    ObjectInfo(
                        key=item.object_name,
                        size=int(item.size or 0),
                        etag=(item.etag or "").strip('"'),
                        last_modified=item.last_modified or datetime.now(UTC),
                    )
                )
            return found, False

        return await self._call("list", prefix, collect)

    async def presigned_put_url(self, key: str, expires: timedelta) -> str:
        return await self._call(
            "presign",
            key,
            lambda: self._signer.presigned_put_object(self.location.bucket, key, expires=expires),
        )

    async def check(self) -> None:
        exists = await self._call("check", "", lambda: self._client.bucket_exists(self.location.bucket))
        if not exists:
            raise StorageError(f"bucket {self.location.bucket!r} does not exist", operation="check")

    async def close(self) -> None:
        await asyncio.to_thread(self._http.clear)

    async def _call(self, operation: str, key: str, call: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(call)
        except S3Error as exc:
            if exc.code in _MISSING:
                raise ObjectNotFound(key) from None
            if exc.code == "PreconditionFailed":
                raise ObjectChanged(key) from None
            raise StorageError(f"S3 {operation} of {key!r} failed: {exc.code}", operation=operation) from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            reason = f"S3 {operation} of {key!r} failed: {type(exc).__name__}"
            raise StorageError(reason, operation=operation) from exc
