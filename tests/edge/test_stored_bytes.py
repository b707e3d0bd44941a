"""Bytes the edge can trust (issue #16): damaged body files are never served as whole, and a full disk never turns
into a client error. Real files, a real tmpfs the test mounts, real HTTP on loopback."""

from __future__ import annotations

import dataclasses
import os
import shutil
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from edgefleet_edge.server import Edge

from tests.edge.conftest import EdgeUnderTest, OriginStub, settings_for


def objects(size: int, count: int, prefix: str) -> dict[str, bytes]:
    return {f"/{prefix}/{n}.bin": bytes([n % 251]) * (size - 1) + b"\n" for n in range(count)}


def serve(origin: OriginStub, bodies: dict[str, bytes]) -> None:
    for path, body in bodies.items():
        origin.routes[path] = lambda request, body=body: web.Response(
            body=body, headers={"Cache-Control": "max-age=600"}
        )


@pytest.fixture
async def small_memory_edge(origin: OriginStub, tmp_path: Path) -> AsyncIterator[EdgeUnderTest]:
    """64 KiB of memory (objects over 8 KiB go to disk, smaller ones are demoted there under pressure)."""
    settings = settings_for(origin, cache_dir=tmp_path / "cache", memory=64 * 1024, disk=64 * 2**20)
    edge = Edge(dataclasses.replace(settings, cache_policy="lru"))
    await edge.start()
    session = aiohttp.ClientSession(auto_decompress=False)
    yield EdgeUnderTest(edge, origin, session)
    await session.close()
    await edge.stop()


def body_files(edge: EdgeUnderTest, paths: Iterable[str]) -> dict[str, Path]:
    """The disk tier's body files of the objects only the disk holds (not copied into memory), by path."""
    disk = edge.edge.store.disk
    assert disk is not None
    return {entry.path: disk.body_path(entry) for path in paths for entry in disk.variants(path)
            if path not in edge.edge.store.by_key}  # fmt: skip


@pytest.mark.parametrize("damage", ["truncated", "bit-flipped"])
@pytest.mark.parametrize("size", [6 * 1024, 100 * 1024], ids=["small-read-whole", "large-streamed"])
async def test_a_damaged_body_file_is_never_served_as_whole(
    small_memory_edge: EdgeUnderTest, damage: str, size: int
) -> None:
    edge = small_memory_edge
    bodies = objects(size, 20, f"d{size}")
    serve(edge.origin, bodies)
    for path in bodies:
        await edge.get(path)
    on_disk = body_files(edge, bodies)
    assert on_disk, "some objects live on the disk tier"
    path, file = next(iter(sorted(on_disk.items())))
    data = file.read_bytes()
    file.write_bytes(
        data[: len(data) // 2] if damage == "truncated" else data[:100] + bytes([data[100] ^ 1]) + data[101:]
    )
    before = edge.origin.count(path)
    served = []
    for _ in range(2):
        try:
            response = await edge.session.get(edge.url + path)
            served.append((response.status, await response.read()))
        except aiohttp.ClientPayloadError:
            served.append((0, b""))  # aborted mid-body: never taken for complete
    assert all(body == bodies[path] for status, body in served if status == 200), "never the damaged bytes"
    assert served[-1] == (200, bodies[path]), "refetched and whole again"
    assert edge.origin.count(path) == before + 1
    assert edge.edge.store.stats.corrupt == 1


def old_json_layout(cache_dir: Path) -> None:
    """The single-process layout before the sqlite index: a body and its JSON sidecar."""
    objects_dir = cache_dir / "objects"
    objects_dir.mkdir(parents=True)
    (objects_dir / "0123abcd.body").write_bytes(b"stale bytes of /old/0.bin")
    (objects_dir / "0123abcd.meta").write_text('{"key": "/old/0.bin", "path": "/old/0.bin", "size": 25}')


def old_sqlite_index(cache_dir: Path) -> None:
    """The first sqlite index (user_version 0): a row naming a body file, which this version must not trust."""
    objects_dir = cache_dir / "objects"
    objects_dir.mkdir(parents=True)
    (objects_dir / "0123abcd-aa.body").write_bytes(b"stale bytes of /old/0.bin")
    db = sqlite3.connect(cache_dir / "index.sqlite")
    db.execute("CREATE TABLE entries (id TEXT PRIMARY KEY, key TEXT, path TEXT, file TEXT, size INTEGER,"
               " stale INTEGER, ref INTEGER, seq INTEGER, meta TEXT)")  # fmt: skip
    db.execute("INSERT INTO entries VALUES ('0123abcd', '/old/0.bin', '/old/0.bin', '0123abcd-aa.body', 25, 0, 0, 0,"
               " '{}')")  # fmt: skip
    db.commit()
    db.close()


@pytest.mark.parametrize("layout", [old_json_layout, old_sqlite_index], ids=["json-sidecars", "sqlite-v1"])
async def test_a_disk_tier_written_by_an_older_version_is_discarded_at_start_up(
    origin: OriginStub, tmp_path: Path, layout: Callable[[Path], None]
) -> None:
    cache_dir = tmp_path / "cache"
    layout(cache_dir)
    bodies = objects(6 * 1024, 1, "old")
    serve(origin, bodies)
    edge = Edge(settings_for(origin, cache_dir=cache_dir, memory=64 * 1024, disk=64 * 2**20))
    await edge.start()
    try:
        assert sorted(p.name for p in (cache_dir / "objects").iterdir()) == [], "the old files are gone"
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{edge.data_port}/old/0.bin") as r:
            assert r.headers["X-Cache"] != "HIT" and await r.read() == bodies["/old/0.bin"]
        assert origin.count("/old/0.bin") == 1
    finally:
        await edge.stop()


def can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


@pytest.fixture
def tiny_disk(tmp_path: Path) -> object:
    """A tmpfs with room for bytes but only a handful of files: writes fail with ENOSPC while free space looks
    fine, the failure the edge cannot see coming."""
    if not can_mount():
        if os.environ.get("CI") == "true":
            pytest.fail("this test needs root and mount(8) to make a small tmpfs; CI runs as root")
        pytest.skip("needs root to mount a tmpfs")
    mount = tmp_path / "cache"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,nr_inodes=16", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


async def test_a_full_disk_serves_every_request_unstored(origin: OriginStub, tiny_disk: Path) -> None:
    settings = settings_for(origin, cache_dir=tiny_disk, memory=64 * 1024, disk=64 * 2**20)
    edge = Edge(dataclasses.replace(settings, cache_policy="lru"))
    await edge.start()
    bodies = {**objects(6 * 1024, 40, "small"), **objects(100 * 1024, 40, "large")}
    serve(origin, bodies)
    try:
        async with aiohttp.ClientSession() as session:
            for path, body in bodies.items():
                async with session.get(f"http://127.0.0.1:{edge.data_port}{path}") as response:
                    assert response.status == 200 and await response.read() == body, path
        assert edge.store.stats.disk_errors > 0, "the disk did fill up"
    finally:
        await edge.stop()
