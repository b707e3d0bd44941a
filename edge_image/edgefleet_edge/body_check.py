"""Bytes the edge can trust: every stored body carries a checksum, and is checked before it is served.

A disk can hand back a truncated file (a crash between write and rename on some filesystems, an operator's
``truncate``), or flipped bits. Serving either as a complete 200 would give every client a broken product photo
until the object expired; instead the entry is evicted, counted, and the request becomes a miss.

CRC-32 (zlib, in C): it catches truncation and bit flips, which is what storage does to files; it is no defence
against someone who can write the cache directory, who could rewrite the metadata too.
"""

from __future__ import annotations

import zlib


class CorruptBody(Exception):
    """A stored body is not what was stored: wrong length or checksum. The store has already evicted it."""


def checksum(data: bytes | memoryview, running: int = 0) -> int:
    return zlib.crc32(data, running)


def as_text(value: int) -> str:
    return f"{value:08x}"


def matches(data: bytes, size: int, expected: str) -> bool:
    """Whether ``data`` is the stored body: its length, and its checksum when one was stored (entries written by
    versions before checksums have none, and are checked by length alone)."""
    if len(data) != size:
        return False
    return not expected or as_text(checksum(data)) == expected
