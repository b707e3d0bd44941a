"""Disk hits of large objects are read off the event loop: a stuck disk delays that response, not the memory hits."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest
from aiohttp import web

from tests.edge.conftest import EdgeUnderTest
from tests.edge.test_purges_and_storage import until

BIG = 2 * 2**20
STUCK_FOR = 5.0
"""How long the stuck read waits to be released before it gives up (a safety net: it is released at once)."""


async def test_a_stuck_disk_read_does_not_stop_memory_hits(
    disk_edge: EdgeUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    edge = disk_edge
    big, small = bytes(range(256)) * (BIG // 256), b"s" * 1_000
    cacheable = {"Cache-Control": "max-age=600"}
    edge.origin.routes["/big.bin"] = lambda request: web.Response(body=big, headers=cacheable)
    edge.origin.routes["/small.css"] = lambda request: web.Response(body=small, headers=cacheable)
    await edge.get("/big.bin")
    await until(lambda: next(edge.edge.store.variants("/big.bin"), None) is not None, "the big body to be stored")
    assert (await edge.get("/small.css")).headers["X-Cache"] == "MISS"

    entered, released = threading.Event(), threading.Event()
    gave_up: list[bool] = []
    real_pread = os.pread

    def stuck_pread(fd: int, count: int, offset: int) -> bytes:
        if os.fstat(fd).st_size == BIG:  # the big body's file: the disk stops answering
            entered.set()
            if not gave_up and not released.wait(STUCK_FOR):
                gave_up.append(True)
        return real_pread(fd, count, offset)

    monkeypatch.setattr(os, "pread", stuck_pread)
    big_hit = asyncio.create_task(edge.get("/big.bin"))
    await until(entered.is_set, "the big body's first read to start")
    hit = await edge.get("/small.css")
    assert hit.status == 200 and hit.headers["X-Cache"] == "HIT" and await hit.read() == small
    released.set()
    response = await big_hit
    assert response.status == 200 and await response.read() == big
    assert not gave_up, "the memory hit was answered while the disk read was stuck"
