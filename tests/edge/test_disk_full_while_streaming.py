"""A disk that fills while a large body streams in: the body goes on to every client, whole and unstored."""

from __future__ import annotations

import errno
import hashlib
from pathlib import Path

import pytest
from edgefleet_edge import streaming
from edgefleet_edge.collapsing import Fetched

from tests.edge.conftest import EdgeUnderTest
from tests.edge.test_disk_tier_edge_cases import entry as stored_entry
from tests.edge.test_large_bodies import BLOCK, generated, sha256_of


async def test_disk_filling_mid_stream_serves_the_whole_body_unstored(
    disk_edge: EdgeUnderTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = 3 * BLOCK
    disk_edge.origin.routes["/big.bin"] = generated(size)
    write = streaming.Transfer.write

    def fills_up(self: streaming.Transfer, data: bytes) -> None:
        if self.written >= BLOCK:
            raise OSError(errno.ENOSPC, "No space left on device")
        write(self, data)

    monkeypatch.setattr(streaming.Transfer, "write", fills_up)
    response = await disk_edge.session.get(disk_edge.url + "/big.bin")
    body = await response.read()
    assert response.status == 200
    assert hashlib.sha256(body).hexdigest() == sha256_of(size)
    store = disk_edge.edge.store
    assert store.disk is not None and store.disk.footprint() == store.disk.index_bytes()  # nothing held or stored
    assert not [p for p in (tmp_path / "cache" / "objects").iterdir() if p.name.startswith(".incoming-")]


async def test_request_arriving_after_an_abandoned_body_went_past_its_file_never_gets_wrong_bytes(
    tmp_path: Path,
) -> None:
    path = tmp_path / ".incoming-x"
    path.write_bytes(b"")
    transfer = streaming.Transfer(path, None)
    leader = transfer.reader()
    chunks = leader.__aiter__()
    transfer.write(b"a" * 10)
    assert await anext(chunks) == b"a" * 10
    transfer.abandon()  # no room for more: the rest goes to readers from memory
    await transfer.put(b"b" * 10)
    assert await anext(chunks) == b"b" * 10
    await transfer.put(b"c" * 10)
    assert await anext(chunks) == b"c" * 10
    stored = stored_entry("/grows.bin", b"")
    fetched = Fetched(200, [], None, None, stream=leader, transfer=transfer, shared_as=stored)
    follower = fetched.for_follower()  # a request collapsing onto the flight now
    transfer.finish()
    leader.close()
    if follower is not None:  # joining is fine only if it reads the body from byte 0
        assert follower.stream is not None
        received = b""
        async for chunk in follower.stream:  # type: ignore[attr-defined]
            assert chunk, "an empty chunk: the reader would spin the event loop"
            received += chunk
        assert received == b"a" * 10 + b"b" * 10 + b"c" * 10
