"""The storage interface, the same contract for both backends (filesystem, S3 on moto)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from edgefleet_origin.errors import ObjectChanged, ObjectNotFound
from edgefleet_origin.objects import ObjectMeta
from edgefleet_origin.ranges import ByteRange
from edgefleet_origin.server import make_storage
from edgefleet_origin.settings import OriginSettings
from edgefleet_origin.staging import StagedUpload, stage_body
from edgefleet_origin.storage import ObjectReader, Storage


@pytest.fixture
async def storage(base_settings: OriginSettings) -> AsyncIterator[Storage]:
    made = make_storage(base_settings)
    yield made
    await made.close()


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def staged(storage: Storage, body: bytes) -> StagedUpload:
    return await stage_body(chunks(body[: len(body) // 2], body[len(body) // 2 :]), storage.staging_dir, 1 << 20)


async def read_all(reader: ObjectReader) -> bytes:
    out = b""
    while chunk := await reader.read(7):
        out += chunk
    await reader.close()
    return out


async def test_stored_object_keeps_its_bytes_and_metadata(storage: Storage) -> None:
    meta = ObjectMeta("image/png", ttl=60, browser_ttl=30, tags=("sku-1", "cat-shoes"))
    info = await storage.put("p/a.png", await staged(storage, b"0123456789"), meta)
    assert (info.key, info.size, info.meta) == ("p/a.png", 10, meta)
    assert await storage.stat("p/a.png") == info
    assert await read_all(await storage.open(info, None)) == b"0123456789"
    assert await read_all(await storage.open(info, ByteRange(2, 4))) == b"234"


async def test_staged_upload_is_consumed(storage: Storage) -> None:
    upload = await staged(storage, b"abc")
    await storage.put("a.txt", upload, ObjectMeta("text/plain"))
    assert not upload.path.exists()
    assert list(Path(storage.staging_dir).glob("upload-*")) == []


async def test_reading_a_replaced_version_is_refused(storage: Storage) -> None:
    old = await storage.put("a.txt", await staged(storage, b"old"), ObjectMeta("text/plain"))
    await storage.put("a.txt", await staged(storage, b"newer bytes"), ObjectMeta("text/plain"))
    with pytest.raises(ObjectChanged):
        await storage.open(old, None)


async def test_deleted_object_is_gone(storage: Storage) -> None:
    info = await storage.put("d/a.txt", await staged(storage, b"x"), ObjectMeta("text/plain"))
    await storage.delete("d/a.txt")
    with pytest.raises(ObjectNotFound):
        await storage.stat("d/a.txt")
    with pytest.raises(ObjectChanged):
        await storage.open(info, None)


@pytest.mark.parametrize(
    ("prefix", "limit", "keys", "truncated"),
    [
        ("", 10, ["a/1", "a/2", "b/1"], False),
        ("a/", 10, ["a/1", "a/2"], False),
        ("a", 1, ["a/1"], True),
        ("c", 10, [], False),
    ],
    ids=["all", "directory", "truncated", "none"],
)
async def test_listing(storage: Storage, prefix: str, limit: int, keys: list[str], truncated: bool) -> None:
    for key in ("a/1", "a/2", "b/1"):
        await storage.put(key, await staged(storage, b"x"), ObjectMeta("text/plain"))
    found, more = await storage.list_objects(prefix, limit)
    assert ([i.key for i in found], more) == (keys, truncated)


async def test_storage_is_ready(storage: Storage) -> None:
    await storage.check()
