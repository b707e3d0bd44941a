"""Bytes the edge can trust (issue #16): damaged body files are never served as whole, a disk tier of another
version is never read, and a full disk never turns into a client error. Each test runs ``edgefleet edge --workers 1``
and ``--workers 2`` (one store, one on-disk format). Real processes, real files, a real tmpfs the test mounts, real
HTTP on loopback."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from edgefleet import metric_names as names
from tests.edge.conftest import OriginStub
from tests.edge.test_storage_any_workers import WORKERS
from tests.edge.test_workers import StartEdge, WorkersEdge, start_edge  # noqa: F401 (the fixture)


def objects(size: int, count: int, prefix: str) -> dict[str, bytes]:
    return {f"/{prefix}/{n}.bin": bytes([n % 251]) * (size - 1) + b"\n" for n in range(count)}


def serve(origin: OriginStub, bodies: dict[str, bytes]) -> None:
    for path, body in bodies.items():
        origin.routes[path] = lambda request, body=body: web.Response(
            body=body, headers={"Cache-Control": "max-age=600"}
        )


def body_file(cache_dir: Path, path: str) -> Path:
    """The disk tier's body file of ``path``, as its index names it."""
    db = sqlite3.connect(f"file:{cache_dir / 'index.sqlite'}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT file FROM entries WHERE path = ?", (path,)).fetchone()
    finally:
        db.close()
    assert row is not None, f"{path} is on the disk tier"
    return cache_dir / "objects" / row[0]


def stop(edge: WorkersEdge) -> None:
    edge.process.send_signal(signal.SIGTERM)
    edge.process.wait(timeout=15)


async def counter(edge: WorkersEdge, name: str) -> float:
    return (await edge.metrics()).get((name, ()), 0.0)


@WORKERS
@pytest.mark.parametrize("damage", ["truncated", "bit-flipped"])
@pytest.mark.parametrize("size", [6 * 1024, 100 * 1024], ids=["small-read-whole", "large-streamed"])
async def test_a_damaged_body_file_is_never_served_as_whole(
    origin: OriginStub,
    start_edge: StartEdge,  # noqa: F811 (the fixture imported above)
    workers: int,
    damage: str,
    size: int,
) -> None:
    bodies = objects(size, 3, f"d{size}")
    serve(origin, bodies)
    first = await start_edge(disk="64Mi", memory="1Mi", policy="lru", workers=workers)
    for path in bodies:
        await first.get(path)
    stop(first)
    # Restarted, memory is empty: every hit below reads the disk (whole up to 64 KiB, else streamed).
    edge = await start_edge(disk="64Mi", memory="1Mi", policy="lru", workers=workers)
    path = sorted(bodies)[0]
    file = body_file(first.cache_dir, path)
    data = file.read_bytes()
    file.write_bytes(
        data[: len(data) // 2] if damage == "truncated" else data[:100] + bytes([data[100] ^ 1]) + data[101:]
    )
    before = origin.count(path)
    served = []
    for _ in range(2):
        try:
            response, received = await edge.get(path)
            served.append((response.status, received))
        except aiohttp.ClientPayloadError:
            served.append((0, b""))  # aborted mid-body: never taken for complete
    assert all(body == bodies[path] for status, body in served if status == 200), "never the damaged bytes"
    assert served[-1] == (200, bodies[path]), "refetched and whole again"
    assert origin.count(path) == before + 1
    assert await counter(edge, names.EDGE_CORRUPT_BODIES) == 1


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


@WORKERS
@pytest.mark.parametrize("layout", [old_json_layout, old_sqlite_index], ids=["json-sidecars", "sqlite-v1"])
async def test_a_disk_tier_written_by_an_older_version_is_discarded_at_start_up(
    origin: OriginStub,
    start_edge: StartEdge,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    workers: int,
    layout: Callable[[Path], None],
) -> None:
    cache_dir = tmp_path / "cache"
    layout(cache_dir)
    bodies = objects(6 * 1024, 1, "old")
    serve(origin, bodies)
    edge = await start_edge(disk="64Mi", memory="64Ki", workers=workers)
    assert not any(p.name.startswith("0123abcd") for p in (cache_dir / "objects").iterdir()), "the old files are gone"
    response, received = await edge.get("/old/0.bin")
    assert response.headers["X-Cache"] != "HIT" and received == bodies["/old/0.bin"]
    assert origin.count("/old/0.bin") == 1


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


@WORKERS
async def test_a_full_disk_serves_every_request_unstored(
    origin: OriginStub,
    start_edge: StartEdge,  # noqa: F811 (the fixture imported above)
    tiny_disk: Path,
    workers: int,
) -> None:
    edge = await start_edge(disk="64Mi", memory="64Ki", policy="lru", workers=workers, cache_dir=tiny_disk)
    bodies = {**objects(6 * 1024, 40, "small"), **objects(100 * 1024, 40, "large")}
    serve(origin, bodies)
    for path, body in bodies.items():
        response, received = await edge.get(path)
        assert response.status == 200 and received == body, path
    assert await counter(edge, names.EDGE_DISK_WRITE_ERRORS) > 0, "the disk did fill up"
