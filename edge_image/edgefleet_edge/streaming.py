"""Bodies too large to hold whole: streamed from the origin, from a body file being filled, or from the disk tier.

Memory per stream is one chunk (plus the transport's write buffer, which the adapters bound with flow control),
whatever the body's size. Every stream here implements ``messages.BodyStream``: iterate once, always close.

A ``Transfer`` is an origin body being written into a temp file in the cache dir while any number of clients
(the leader and its collapsed followers) read it back at their own pace. Invariants: the first ``written``
bytes of the file are final; ``complete`` and ``failed`` are each set at most once and never both; the file
descriptor stays open while the writer or any reader still uses it, so renaming the finished file into the
store, or evicting it later, never cuts a reader short. A failed transfer's readers raise ``StreamAborted``
once they have read what was written: the client sees an aborted response, never a short one that looks whole.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Protocol

from .body_check import as_text, checksum
from .messages import BodyStream, StreamAborted
from .origin_client import OriginError, OriginResponse

FILE_CHUNK = 256 * 1024
"""Bytes read from a body file per step: large enough that per-chunk overhead vanishes, small next to any body
worth streaming."""

Segment = bytes | tuple[int, int]
"""Literal bytes, or (offset, count) of a body file: what a range or multipart response is made of."""


def segments_length(segments: Sequence[Segment]) -> int:
    return sum(len(s) if isinstance(s, bytes) else s[1] for s in segments)


class LocalStream(BodyStream, Protocol):
    """The streams this module makes: closing them needs no await, so it can happen anywhere."""

    def close(self) -> None: ...


class HeadOnly:
    """The length of a body that HEAD does not send."""

    def __init__(self, length: int | None) -> None:
        self.length = length

    async def __aiter__(self) -> AsyncIterator[bytes]:
        return
        yield b""  # pragma: no cover - makes this an async generator

    async def aclose(self) -> None:
        return None

    def close(self) -> None:
        return None


class FileBody:
    """Segments of a stored body file, read chunk by chunk in a worker thread.

    The file is opened when the response is built: a purge, eviction or replacement after that unlinks or
    replaces the name, not the body this response is sending. Reads (and the checksum) run off the event loop, so
    a slow or cold disk delays this response only, never the memory hits the loop serves meanwhile. Invariant:
    the descriptor is closed only when no read is in flight (a close during one is done when it returns), so a
    thread never reads a descriptor number the process has reused.
    """

    def __init__(self, path: Path, segments: Sequence[Segment]) -> None:
        self._fd: int | None = os.open(path, os.O_RDONLY)
        self.file_size = os.fstat(self._fd).st_size
        self._segments = segments
        self.length: int | None = segments_length(segments)
        self._expected: str | None = None
        self._on_mismatch: Callable[[], None] | None = None
        self._on_whole: Callable[[bytes], None] | None = None
        self._reading = False
        self._closed = False

    def verify(self, expected: str, on_mismatch: Callable[[], None]) -> None:
        """Check the whole body against ``expected`` (``body_check``) as it is sent; on a mismatch call
        ``on_mismatch`` and abort the stream before its last bytes."""
        self._expected, self._on_mismatch = expected, on_mismatch

    def on_whole(self, callback: Callable[[bytes], None]) -> None:
        """Hand the whole body to ``callback`` once it has been read and checked (the store keeps a memory copy)."""
        self._on_whole = callback

    def _read(self, fd: int, count: int, offset: int, crc: int) -> tuple[bytes, int]:
        data = os.pread(fd, count, offset)
        return data, checksum(data, crc) if self._expected is not None else crc

    async def __aiter__(self) -> AsyncIterator[bytes]:
        crc = 0
        kept: list[bytes] | None = [] if self._on_whole is not None else None
        for segment in self._segments:
            if isinstance(segment, bytes):
                yield segment
                continue
            offset, remaining = segment
            while remaining > 0:
                if self._fd is None or self._closed:
                    raise StreamAborted("body file closed")
                self._reading = True
                try:
                    data, crc = await asyncio.to_thread(self._read, self._fd, min(FILE_CHUNK, remaining), offset, crc)
                finally:
                    self._reading = False
                    if self._closed:
                        self._close_fd()
                if self._fd is None:
                    raise StreamAborted("body file closed")
                if not data:
                    raise StreamAborted("stored body file is shorter than its entry says")
                offset += len(data)
                remaining -= len(data)
                if self._expected is not None and remaining == 0 and as_text(crc) != self._expected:
                    if self._on_mismatch is not None:
                        self._on_mismatch()
                    raise StreamAborted("stored body does not match its checksum")
                if kept is not None:
                    kept.append(data)
                yield data
        if kept is not None and self._on_whole is not None and self._expected is not None:
            self._on_whole(b"".join(kept))

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        self._closed = True
        if not self._reading:
            self._close_fd()

    async def aclose(self) -> None:
        self.close()


class MemorySegments:
    """Segments of a body held in memory (a multipart/byteranges answer from the memory tier), sent piece by piece
    under the connection's flow control: the response is never assembled as one more copy of the object."""

    def __init__(self, body: bytes, segments: Sequence[Segment]) -> None:
        self._body = body
        self._segments = segments
        self.length: int | None = segments_length(segments)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for segment in self._segments:
            if isinstance(segment, bytes):
                yield segment
                continue
            offset, remaining = segment
            end = offset + remaining
            while offset < end:
                yield self._body[offset : min(end, offset + FILE_CHUNK)]
                offset += FILE_CHUNK

    def close(self) -> None:
        self._segments = ()

    async def aclose(self) -> None:
        self.close()


class OriginBody:
    """An origin response passed straight through to one client, never stored: the client's pace is the origin's.

    ``prefix`` holds what was already read while finding out that the body is large.
    """

    def __init__(self, response: OriginResponse, length: int | None, prefix: Sequence[bytes] = ()) -> None:
        self._response: OriginResponse | None = response
        self._prefix = list(prefix)
        self.length = length

    async def __aiter__(self) -> AsyncIterator[bytes]:
        response = self._response
        if response is None:
            raise StreamAborted("origin response already closed")
        sent = 0
        prefix, self._prefix = self._prefix, []
        for chunk in prefix:
            sent += len(chunk)
            yield chunk
        try:
            async for chunk in response.iter_chunks():
                sent += len(chunk)
                yield chunk
        except (OriginError, TimeoutError) as exc:
            raise StreamAborted(f"origin failed mid-body: {type(exc).__name__}") from exc
        if self.length is not None and sent != self.length:
            raise StreamAborted(f"origin sent {sent} of {self.length} bytes")

    def close(self) -> None:
        if self._response is not None:
            # An unread remainder cannot go back to the pool: release keeps the connection only when it is whole.
            self._response.release()
            self._response = None

    async def aclose(self) -> None:
        self.close()


class Transfer:
    """An origin body being written to ``path`` while clients read it (see the module docstring)."""

    def __init__(self, path: Path, length: int | None) -> None:
        self.path = path
        self.length = length
        self.written = 0
        self.crc = 0
        """CRC-32 of what was written so far (``body_check``): the stored entry's checksum once whole."""
        self.complete = False
        self.failed = False
        self.abandoned = False
        """No longer written to the file (the disk had no room for more): the rest goes to readers from memory."""
        self._file_end: int | None = None
        self._held = b""
        self._held_at = 0
        self._offsets: dict[int, int] = {}
        """Each open reader's position (``id`` of the reader), which an abandoned transfer waits on."""
        self._taken: asyncio.Event = asyncio.Event()
        self._fd: int | None = os.open(path, os.O_RDWR)
        self._users = 1  # the writer
        self._more: asyncio.Event = asyncio.Event()
        self._on_end: list[Callable[[], None]] = []

    def write(self, data: bytes) -> None:
        assert self._fd is not None and not (self.complete or self.failed)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        self.written += len(data)
        self.crc = checksum(data, self.crc)
        self._wake()

    def abandon(self) -> None:
        """Stop writing to the file: what is in it stays readable, later chunks go through ``put`` one at a time."""
        self.abandoned = True
        self._file_end = self._held_at = self.written

    async def put(self, data: bytes) -> None:
        """``write``, or once abandoned, hand ``data`` to the readers from memory: it waits until every open reader
        has taken everything before (memory stays one chunk; the origin goes at the slowest reader's pace)."""
        if not self.abandoned:
            self.write(data)
            return
        while any(offset < self.written for offset in self._offsets.values()):
            self._taken.clear()
            await self._taken.wait()
        self._held, self._held_at = data, self.written
        self.written += len(data)
        self.crc = checksum(data, self.crc)
        self._wake()

    def _advanced(self, reader: int, offset: int | None) -> None:
        if offset is None:
            self._offsets.pop(reader, None)
        else:
            self._offsets[reader] = offset
        self._taken.set()

    def finish(self) -> None:
        """The body is whole (the caller has already moved the file into the store, or removed it)."""
        self.complete = True
        self._end()

    def fail(self) -> None:
        """The body will never be whole: readers abort, the temp file goes."""
        self.failed = True
        self.path.unlink(missing_ok=True)
        self._end()

    def on_end(self, callback: Callable[[], None]) -> None:
        self._on_end.append(callback)

    def reader(self) -> TransferReader:
        assert self._fd is not None, "a transfer's readers are taken before its writer ends"
        self._users += 1
        return TransferReader(self)

    def _end(self) -> None:
        self._wake()
        callbacks, self._on_end = self._on_end, []
        for callback in callbacks:
            callback()
        self._release()

    def _wake(self) -> None:
        self._more.set()
        self._more = asyncio.Event()

    def _release(self) -> None:
        self._users -= 1
        if self._users == 0 and self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _read(self, offset: int, count: int) -> bytes:
        if self._file_end is not None and offset >= self._file_end:
            start = offset - self._held_at  # >= 0: the writer waits for every reader before moving on
            return self._held[start : start + count]
        if self._file_end is not None:
            count = min(count, self._file_end - offset)
        assert self._fd is not None
        return os.pread(self._fd, count, offset)


class TransferReader:
    """One client's view of a ``Transfer``: from byte 0, as fast as the client takes it and the origin gives it."""

    def __init__(self, transfer: Transfer) -> None:
        self._transfer: Transfer | None = transfer
        self.length = transfer.length
        transfer._advanced(id(self), 0)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        offset = 0
        while True:  # every lap reads bytes, ends, or waits for the writer, which always adds or ends
            transfer = self._transfer
            if transfer is None:
                raise StreamAborted("reader closed")
            if offset < transfer.written:
                data = transfer._read(offset, min(FILE_CHUNK, transfer.written - offset))
                offset += len(data)
                transfer._advanced(id(self), offset)
                yield data
            elif transfer.failed:
                raise StreamAborted("origin failed mid-body")
            elif transfer.complete:
                return
            else:
                await transfer._more.wait()

    def close(self) -> None:
        if self._transfer is not None:
            self._transfer._advanced(id(self), None)
            self._transfer._release()
            self._transfer = None

    async def aclose(self) -> None:
        self.close()
