"""The edge's HTTP/1.1 client to its one origin: a pool of keep-alive connections parsed with httptools (llhttp).

Written by hand instead of using aiohttp's client because a shared cache must see what that client hides:
- interim 1xx responses (RFC 9110 §15.2: a proxy forwards them; aiohttp drops them);
- a response whose body is longer than its Content-Length: RFC 9112 §6.3 says the message ends at Content-Length
  and the rest is not to be trusted, so the connection is closed and the response stands. aiohttp's parser fails
  the whole response when the extra bytes arrive in the same read, which turned a usable answer into a 502.
It is also the miss path's hot loop, and the data port already speaks httptools.

Scope: one origin (scheme, host, port from its URL; plain HTTP or TLS), requests with a whole body in memory,
responses streamed under flow control (reading pauses while ``HIGH_WATER`` bytes wait unread). Timeouts: connect,
and read (the longest wait for the head or for any next chunk, so a slow body is fine and a stalled one is not).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

HIGH_WATER = 256 * 1024
"""Unread body bytes at which the connection stops reading from the origin (until they are consumed)."""
LOW_WATER = 64 * 1024


class OriginError(Exception):
    """The origin could not be reached, broke the connection, or sent something that is not HTTP/1.1."""


class OriginTimeout(OriginError, TimeoutError):
    """The origin did not connect, or did not send the next part of its response, in time."""


@dataclass(frozen=True)
class Interim:
    """An interim (1xx) response that came before the final one."""

    status: int
    headers: list[tuple[str, str]]


class OriginResponse:
    """A response whose head has arrived; its body streams in (``iter_chunks``, ``read``).

    Exactly one of ``release`` (the body was read whole: the connection may be reused) or ``close`` ends it.
    """

    def __init__(self, connection: _Connection, status: int, headers: list[tuple[str, str]],
                 interim: list[Interim], read_timeout: float) -> None:  # fmt: skip
        self._connection: _Connection | None = connection
        self.status = status
        self.raw_headers = headers
        self.headers: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict(headers))
        self.interim = interim
        self._read_timeout = read_timeout
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._ended = False
        self._failure: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        length = self.headers.get("Content-Length")
        self.content_length = int(length) if length is not None and length.isdigit() else None

    @property
    def complete(self) -> bool:
        """The whole body has arrived (it may still wait unread)."""
        return self._ended

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.iter_chunks()])

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives. Raises ``OriginError`` if it cannot be completed, ``OriginTimeout`` if it stalls."""
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._buffered <= LOW_WATER and self._connection is not None:
                    self._connection.resume()
                yield chunk
                continue
            if self._failure is not None:
                raise self._failure
            if self._ended:
                return
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(self._read_timeout):
                    await self._waiter
            except TimeoutError as exc:
                self.close()
                raise OriginTimeout("origin stalled mid-body") from exc
            finally:
                self._waiter = None

    def release(self) -> None:
        """Done with it: a wholly received response hands its connection back to the pool, anything else closes it."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.response_done(reusable=self._ended and not self._chunks)

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.response_done(reusable=False)

    # ---- fed by the connection ------------------------------------------------------------------------------

    def _feed(self, chunk: bytes) -> bool:
        """Queue a body chunk; False when the reader should pause."""
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        self._wake()
        return self._buffered < HIGH_WATER

    def _end(self) -> None:
        self._ended = True
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        if not self._ended:
            self._failure = exc
            self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class _Connection(asyncio.Protocol):
    """One keep-alive connection: requests are sent one at a time; llhttp parses what comes back."""

    def __init__(self, pool: OriginPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.received_any = False
        self._head: asyncio.Future[OriginResponse] | None = None
        self._response: OriginResponse | None = None
        self._interim: list[Interim] = []
        self._fields: list[tuple[str, str]] = []
        self._until_close = False
        self._message_done = True
        self._idle_timer: asyncio.TimerHandle | None = None
        self._paused = False
        self.checked_out = False
        """Lent to a request: it holds one of the pool's slots until it is given back or dropped."""

    # ---- asyncio ----------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            if self._message_done and self._response is not None:
                # RFC 9112 §6.3: bytes past the end of a complete response are not part of it (a body longer than
                # its Content-Length): the response stands, the connection is not to be trusted again.
                self._drop()
                return
            self._abort(OriginError(f"origin sent a malformed response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self.pool.forget(self)
        response = self._response
        if response is not None and not self._message_done:
            if self._until_close and exc is None:
                response._end()  # RFC 9112 §6.3: no Content-Length, no chunking: the body ends with the connection
            else:
                response._fail(OriginError("origin closed the connection mid-body"))
        if self._head is not None and not self._head.done():
            self._head.set_exception(OriginError("origin closed the connection before answering"))

    # ---- llhttp callbacks ---------------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._message_done = False
        self._fields = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            self._interim.append(Interim(status, self._fields))
            return
        response = OriginResponse(self, status, self._fields, self._interim, self.pool.read_timeout)
        self._response = response
        names = {name.lower() for name, _ in self._fields}
        self._until_close = (
            "content-length" not in names and "transfer-encoding" not in names and status not in (204, 304)
        )
        if self._head is not None and not self._head.done():
            self._head.set_result(response)

    def on_body(self, body: bytes) -> None:
        if self._response is not None and not self._response._feed(body) and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        self._message_done = True
        if self._response is None:
            return  # an interim response: the final one follows on the same connection
        self._response._end()
        if not self.parser.should_keep_alive():
            self._drop()

    # ---- used by the pool and the response ----------------------------------------------------------------

    async def send(self, request: bytes, timeout: float) -> OriginResponse:
        assert self.transport is not None
        self._response, self._interim, self._message_done = None, [], True
        self.received_any = False
        self._head = asyncio.get_running_loop().create_future()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self.transport.write(request)
        try:
            async with asyncio.timeout(timeout):
                return await self._head
        except TimeoutError as exc:
            self._drop()
            raise OriginTimeout("origin did not answer in time") from exc

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    def response_done(self, *, reusable: bool) -> None:
        self._response = None
        if reusable and not self.closed and self._message_done and self.transport is not None:
            self.pool.give_back(self)
        else:
            self._drop()

    def idle_for(self, seconds: float) -> None:
        self._idle_timer = asyncio.get_running_loop().call_later(seconds, self._drop)

    def _abort(self, exc: OriginError) -> None:
        if self._response is not None:
            self._response._fail(exc)
        if self._head is not None and not self._head.done():
            self._head.set_exception(exc)
        self._drop()

    def _drop(self) -> None:
        if not self.closed:
            self.closed = True
            self.pool.forget(self)
            if self.transport is not None:
                self.transport.close()


class OriginPool:
    """Keep-alive connections to one origin, at most ``limit`` of them in use at once."""

    def __init__(self, origin: str, *, limit: int = 256, keepalive: float = 30.0, connect_timeout: float = 5.0,
                 read_timeout: float = 30.0) -> None:  # fmt: skip
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"origin must be an http:// or https:// URL, not {origin!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.host_header = parts.netloc.rpartition("@")[2]
        self.prefix = parts.path.rstrip("/")
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.keepalive = keepalive
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()
        self._slots = asyncio.Semaphore(limit)

    async def request(self, method: str, target: str, headers: Iterable[tuple[str, str]],
                      body: bytes = b"") -> OriginResponse:  # fmt: skip
        """Send one request; returns once the response head is in. Its ``release``/``close`` frees the slot."""
        lines = [f"{method} {self.prefix}{target} HTTP/1.1\r\nHost: {self.host_header}\r\n"]
        lines += [f"{name}: {value}\r\n" for name, value in headers]
        if body or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
            lines.append(f"Content-Length: {len(body)}\r\n")
        request = "".join(lines).encode("latin-1", errors="replace") + b"\r\n" + body
        connection, reused = await self._check_out()
        try:
            return await connection.send(request, self.read_timeout)
        except OriginError:
            if not reused or connection.received_any:
                raise
        # The origin closed an idle connection just as it was reused: once more on a new one (nothing was answered,
        # so the origin saw no request to repeat).
        connection, _ = await self._check_out(fresh=True)
        return await connection.send(request, self.read_timeout)

    async def _check_out(self, fresh: bool = False) -> tuple[_Connection, bool]:
        """A connection lent to one request, with one of the ``limit`` slots (waits for a slot when all are lent)."""
        await self._slots.acquire()
        try:
            connection, reused = await self._connection(fresh)
        except BaseException:
            self._slots.release()
            raise
        connection.checked_out = True
        return connection, reused

    async def _connection(self, fresh: bool) -> tuple[_Connection, bool]:
        while self._idle and not fresh:
            connection = self._idle.pop()
            if not connection.closed:
                return connection, True
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, protocol = await loop.create_connection(
                    lambda: _Connection(self), self.host, self.port, ssl=self.ssl,
                    server_hostname=self.host if self.ssl else None,
                )  # fmt: skip
        except TimeoutError as exc:
            raise OriginTimeout(f"origin {self.host}:{self.port} did not accept a connection in time") from exc
        except OSError as exc:
            raise OriginError(f"origin {self.host}:{self.port} unreachable: {exc.strerror or exc}") from exc
        self._open.add(protocol)
        return protocol, False

    def give_back(self, connection: _Connection) -> None:
        if connection.checked_out:
            connection.checked_out = False
            self._slots.release()
        connection.idle_for(self.keepalive)
        self._idle.append(connection)

    def forget(self, connection: _Connection) -> None:
        """A connection closed (by either side): it leaves the pool, and its slot, if it held one, is free."""
        self._open.discard(connection)
        if connection.checked_out:
            connection.checked_out = False
            self._slots.release()
        with contextlib.suppress(ValueError):
            self._idle.remove(connection)

    async def close(self) -> None:
        for connection in list(self._open):
            connection._drop()
