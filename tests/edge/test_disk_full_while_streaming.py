"""A disk that fills while a large body streams in: the body goes on to every client, whole and unstored."""

from __future__ import annotations

import errno
import hashlib
from pathlib import Path

import pytest
from edgefleet_edge import streaming

from tests.edge.conftest import EdgeUnderTest
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
