"""The data port as a raw asyncio protocol with httptools (llhttp) parsing.

Written by hand because the hit path is the product: aiohttp builds a request object, a multidict of
headers and a response object per request; here a hit is recognise (``plain_request.py``, without the
parser when the read is one plain GET/HEAD) → dictionary lookup (``plain_hits.py``) → one ``write`` of
bytes. The adapter only moves bytes and enforces limits, timeouts and flow control (as uvicorn's
httptools_impl does); every cache decision stays in ``CachingProxy`` and ``PlainHits``.

Limits, each a clear status and a closed connection: request target over ``max_target`` bytes → 414,
headers over ``max_header_bytes`` or ``max_headers`` → 431, body over ``max_body`` → 413, headers not
complete within ``header_timeout`` (slowloris) → 408, malformed → 400; idle keep-alive connections close
after ``idle_timeout``; past ``max_connections`` new connections get 503 and are closed.

Large bodies (``EdgeResponse.stream``) are written chunk by chunk under the transport's flow control: after a
write that fills the transport's buffer (``pause_writing``) the next chunk waits for ``resume_writing``, so a
slow client holds at most one chunk plus the buffer. A stream that fails mid-body aborts the connection, so
the client sees fewer bytes than Content-Length promised (or no final chunk), never a complete-looking body.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from collections import deque
from dataclasses import dataclass
from email.utils import formatdate
from typing import cast
from urllib.parse import unquote

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from .access_log import AccessLog
from .messages import BodyStream, EdgeRequest, EdgeResponse, StreamAborted
from .plain_request import recognise_plain
from .proxy import CachingProxy
from .response_head import STATUS_LINES, head

logger = logging.getLogger(__name__)

NO_BODY_STATUSES = frozenset({204, 304})
PIPELINE_DEPTH = 16
"""Pipelined requests queued before the connection stops reading until it catches up."""


@dataclass(frozen=True)
class Limits:
    max_target: int = 8190
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    max_body: int = 64 * 1024 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 15.0
    """The longest wait for the next part of a request body (a slow upload is fine, a stalled one is not)."""
    idle_timeout: float = 75.0
    max_connections: int = 10_000


class _Clock:
    """The Date header, formatted once per second rather than once per response."""

    def __init__(self) -> None:
        self._second = -1
        self._line = b""

    def date_line(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._line = f"Date: {formatdate(now, usegmt=True)}\r\n".encode()
        return self._line


def _head(response: EdgeResponse, date_line: bytes, framing: bytes, keep_alive: bool) -> list[bytes]:
    """Status line, the response's fields, Date (unless the response carries the origin's), the body's framing
    field (if any) and the blank line."""
    headers = response.headers
    dated = b"" if "Date" in headers else date_line
    closing = b"" if keep_alive else b"Connection: close\r\n"
    return [head(response.status, headers.items(), dated, framing, closing)]


def serialise(response: EdgeResponse, date_line: bytes, keep_alive: bool) -> bytes:
    status = response.status
    has_body = status not in NO_BODY_STATUSES
    framing = b"Content-Length: %d\r\n" % len(response.body) if has_body and status >= 200 else b""
    parts = _head(response, date_line, framing, keep_alive)
    if not response.head_only and has_body:
        parts.append(response.body)
    return b"".join(parts)


def serialise_stream_head(response: EdgeResponse, stream: BodyStream, date_line: bytes, keep_alive: bool) -> bytes:
    """The head of a streamed response: Content-Length when the size is known, else chunked (RFC 9112 §7.1)."""
    if stream.length is not None:
        framing = b"Content-Length: %d\r\n" % stream.length
    else:
        framing = b"" if response.head_only else b"Transfer-Encoding: chunked\r\n"
    return b"".join(_head(response, date_line, framing, keep_alive))


def _plain(status: int, reason: str) -> bytes:
    body = f"{status} {reason}\n".encode()
    return (
        STATUS_LINES[status]
        + b"Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


_REQUEST_LINE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+ [!-~]+ HTTP/\d\.\d\r\n")


class _Reject(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class HttpToolsServer:
    def __init__(self, proxy: CachingProxy, limits: Limits = Limits(), access_log: AccessLog | None = None) -> None:
        self.proxy = proxy
        self.limits = limits
        self.access_log = access_log
        self.clock = _Clock()
        self.connections: set[EdgeProtocol] = set()
        self._server: asyncio.AbstractServer | None = None

    async def start(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: EdgeProtocol(self), host, port, reuse_port=True, backlog=1024)
        return int(self._server.sockets[0].getsockname()[1])

    async def start_on(self, sock: socket.socket) -> int:
        """Serve a listening socket bound elsewhere (a worker serves the one its supervisor bound)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: EdgeProtocol(self), sock=sock, backlog=1024)
        return int(sock.getsockname()[1])

    def shed_one(self) -> bool:
        """At the connection cap, close the connection that has waited longest without being answered (idle, or
        stalled mid-request) to make room: a cap filled by clients that send nothing must not lock out one that
        does. False when every connection is being answered."""
        waiting = [c for c in self.connections if c.waiting()]
        if not waiting:
            return False
        victim = min(waiting, key=lambda connection: connection.last_active)
        victim.shed()
        return True

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for connection in list(self.connections):
                connection.close()
            await self._server.wait_closed()


class EdgeProtocol(asyncio.Protocol):
    def __init__(self, server: HttpToolsServer) -> None:
        self.server = server
        self.limits = server.limits
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.queue: deque[tuple[EdgeRequest, bool]] = deque()
        self.worker: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.remote = ""
        self.between_messages = True
        """The parser has no partial request: the next read may be recognised without it."""
        self._plain_hit = server.proxy.plain.for_recognised  # bound once: they run for every hit
        self._access = server.access_log
        self._client = b"-"
        self._max_headers = server.limits.max_headers
        self.last_active = self.loop.time()
        self.eof = False
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._reset()

    # ---- connection --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        if len(self.server.connections) >= self.limits.max_connections and not self.server.shed_one():
            self.transport.write(_plain(503, "too many connections"))
            self.transport.close()
            return
        self.server.connections.add(self)
        peer = self.transport.get_extra_info("peername")
        self.remote = peer[0] if peer else ""
        self._client = self.remote.encode() or b"-"
        self._arm(self.limits.idle_timeout, self._idle)

    def eof_received(self) -> bool | None:
        """The client half-closed (shut its sending side, as ``curl`` and load balancers may): answer what it has
        asked, then close; with nothing left to answer, close now."""
        self.eof = True
        return None if self.waiting() else True

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self._disarm()
        if self.worker is not None and not self.worker.done():
            self.worker.cancel()
        self.transport = None
        self.resume_writing()

    # ---- flow control (asyncio calls these around the transport's write buffer high/low marks) -------------

    def pause_writing(self) -> None:
        self._write_paused = True
        # A client that keeps sending requests without reading the answers must not grow our write buffer
        # without bound: read nothing more from it until it has caught up.
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self.transport is not None and not self.transport.is_closing() and len(self.queue) <= PIPELINE_DEPTH:
            self.transport.resume_reading()

    async def _drain(self) -> None:
        if self._write_paused and self.transport is not None:
            self._drain_waiter = self.loop.create_future()
            await self._drain_waiter

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def waiting(self) -> bool:
        """Nothing is being answered on this connection: it is idle, or waits for the rest of a request."""
        return not self.queue and (self.worker is None or self.worker.done())

    def shed(self) -> None:
        self.server.connections.discard(self)
        if self.between_messages:
            self.close()
        else:
            self._reject(503, "the edge is at its connection limit")

    def _arm(self, delay: float, callback: object) -> None:
        self._disarm()
        self.timer = self.loop.call_later(delay, callback)  # type: ignore[arg-type]

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _idle(self) -> None:
        # Requests answered by the recogniser only stamp ``last_active`` (re-arming a timer per hit costs
        # more than the hit); the timer checks the stamp when it fires and waits out the remainder.
        remaining = self.last_active + self.limits.idle_timeout - self.loop.time()
        if remaining > 0:
            self.timer = self.loop.call_later(remaining, self._idle)
            return
        self.close()

    def _slow_headers(self) -> None:
        self._reject(408, "request headers not received in time")

    def _slow_body(self) -> None:
        self._reject(408, "request body not received in time")

    def body_expected(self) -> bool:
        """Whether the request being parsed announced a body (Content-Length > 0, or chunked)."""
        for name, value in self.header_list:
            lowered = name.lower()
            if lowered == "transfer-encoding" or (lowered == "content-length" and value.strip() not in ("", "0")):
                return True
        return False

    def _reject(self, status: int, reason: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_plain(status, reason))
            self.transport.close()

    # ---- parsing -----------------------------------------------------------------------------

    def _reset(self) -> None:
        self.url = b""
        self.header_list: list[tuple[str, str]] = []
        self.header_bytes = 0
        self.body_parts: list[bytes] = []
        self.body_size = 0
        self.error: _Reject | None = None

    def data_received(self, data: bytes) -> None:
        started = self.last_active = self.loop.time()
        if self.between_messages and not self.queue and (self.worker is None or self.worker.done()):
            # The hot path: a whole plain GET/HEAD for a fresh memory-tier object, answered without the
            # parser. Anything else (or a miss) falls through to the parser with the same bytes.
            plain = recognise_plain(data, self._max_headers)
            if plain is not None:
                response = self._plain_hit(plain)
                if response is not None:
                    if isinstance(response, bytes):
                        self.transport.write(response)  # type: ignore[union-attr]
                        sent = len(response)
                    else:
                        self.transport.writelines(response)  # type: ignore[union-attr]
                        sent = len(response[0]) + len(response[1])
                    if self._access is not None:
                        self._access.hit(self._client, plain[0], plain[1], sent, self.loop.time() - started)
                    return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reject(400, "protocol upgrades are not supported")
        except httptools.HttpParserInvalidMethodError:
            # A well-formed request line with a method llhttp does not know is 501 (RFC 9110 §9.1); garbage is 400.
            if _REQUEST_LINE.match(data):
                self._reject(501, "method not implemented")
            else:
                self._reject(400, "malformed request")
        except httptools.HttpParserError as exc:
            if self.error is not None:
                self._reject(self.error.status, self.error.reason)
            elif "HTTP version" in str(exc):
                self._reject(505, "HTTP version not supported")
            else:
                self._reject(400, "malformed request")
        if len(self.queue) > PIPELINE_DEPTH and self.transport is not None:
            self.transport.pause_reading()  # pipelining flood: stop reading until we catch up

    def on_message_begin(self) -> None:
        self.between_messages = False
        self._reset()
        self._arm(self.limits.header_timeout, self._slow_headers)

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.limits.max_target:
            self.error = _Reject(414, "request target too long")
            raise httptools.HttpParserError("target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value)
        if self.header_bytes > self.limits.max_header_bytes or len(self.header_list) >= self.limits.max_headers:
            self.error = _Reject(431, "request header fields too large")
            raise httptools.HttpParserError("headers too large")
        self.header_list.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self._disarm()
        version = self.parser.get_http_version()
        if not version.startswith("1."):
            self.error = _Reject(505, "HTTP version not supported")
            raise httptools.HttpParserError("version")
        # RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host; none or several is a 400 (and a 1.0 one at most
        # one), so nothing downstream can be made to read a different Host than the edge did.
        hosts = sum(1 for name, _ in self.header_list if name.lower() == "host")
        if hosts > 1 or (hosts == 0 and version == "1.1"):
            self.error = _Reject(400, "a request needs exactly one Host header")
            raise httptools.HttpParserError("host")
        if self.body_expected():
            self._arm(self.limits.body_timeout, self._slow_body)

    def on_body(self, body: bytes) -> None:
        if self.timer is not None:
            self._arm(self.limits.body_timeout, self._slow_body)  # a body may be slow, never stalled
        self.body_size += len(body)
        if self.body_size > self.limits.max_body:
            self.error = _Reject(413, "request body too large")
            raise httptools.HttpParserError("body too large")
        self.body_parts.append(body)

    def on_message_complete(self) -> None:
        self._disarm()
        try:
            parsed = httptools.parse_url(self.url)
        except httptools.HttpParserInvalidURLError:
            self.error = _Reject(400, "malformed request target")
            raise httptools.HttpParserError("bad url") from None
        # Absolute-form targets are reduced to their path: the host part is never used (no SSRF).
        raw_path = parsed.path.decode("latin-1") if parsed.path else "/"
        if not raw_path.startswith("/") and not (raw_path == "*" and self.parser.get_method() == b"OPTIONS"):
            self.error = _Reject(400, "malformed request target")  # RFC 9112 §3.2: only OPTIONS has "*"
            raise httptools.HttpParserError("bad target")
        query = parsed.query.decode("latin-1") if parsed.query else ""
        headers = CIMultiDictProxy(CIMultiDict(self.header_list))
        request = EdgeRequest(
            method=self.parser.get_method().decode(),
            path=unquote(raw_path),
            query_string=query,
            target=raw_path + ("?" + query if query else ""),
            headers=headers,
            remote=self.remote,
            host=headers.get("Host", ""),
            body=b"".join(self.body_parts),
            http_version=self.parser.get_http_version(),
        )
        self.queue.append((request, self.parser.should_keep_alive()))
        self.between_messages = True
        if self.worker is None or self.worker.done():
            self.worker = self.loop.create_task(self._respond())

    # ---- responding --------------------------------------------------------------------------

    async def _respond(self) -> None:
        # Pipelined requests are answered in order, one at a time (RFC 9112 §9.3.2).
        while self.queue and self.transport is not None:
            request, keep_alive = self.queue.popleft()
            began = self.loop.time()
            fast = self.server.proxy.plain.for_request(request, keep_alive)
            if fast is not None:
                if isinstance(fast, bytes):
                    self.transport.write(fast)
                else:
                    self.transport.writelines(fast)
                if self._access is not None:
                    sent = len(fast) if isinstance(fast, bytes) else len(fast[0]) + len(fast[1])
                    self._access.request(self._client, request.method, request.target, 200, sent, "HIT", None,
                                         self.loop.time() - began)  # fmt: skip
                if not keep_alive:
                    self.transport.close()
                    return
                continue
            try:
                response = await self.server.proxy.handle(request)
            except Exception:  # one failed request must not take the connection's others down silently
                logger.exception("Edge failed to answer %s %s", request.method, request.target)
                response = EdgeResponse(500, CIMultiDict({"Content-Type": "text/plain"}), b"500 internal error\n")
                keep_alive = False
            if response.interim and request.http_version == "1.1" and self.transport is not None:
                # RFC 9110 §15.2: interim responses go to HTTP/1.1 clients only, before the final one.
                self.transport.write(b"".join(head(status, fields) for status, fields in response.interim))
            if response.stream is not None:
                sent = response.stream.length or 0
                done = await self._send_stream(response, response.stream, keep_alive)
                self._log(request, response, sent, began)
                if not done:
                    return
            elif self.transport is None:
                return
            else:
                wire = serialise(response, self.server.clock.date_line(), keep_alive)
                self.transport.write(wire)
                self._log(request, response, len(wire), began)
            if self.transport is None:
                return
            if not keep_alive:
                self.transport.close()
                return
            if self.transport.is_reading() is False and not self._write_paused:
                self.transport.resume_reading()
        if self.eof and self.transport is not None:
            self.transport.close()
            return
        self.last_active = self.loop.time()
        self._arm(self.limits.idle_timeout, self._idle)

    def _log(self, request: EdgeRequest, response: EdgeResponse, sent: int, began: float) -> None:
        if self._access is not None:
            cache = response.headers.get("X-Cache", "-")
            self._access.request(self._client, request.method, request.target, response.status, sent, cache,
                                 response.origin_seconds, self.loop.time() - began)  # fmt: skip

    async def _send_stream(self, response: EdgeResponse, stream: BodyStream, keep_alive: bool) -> bool:
        """Write a streamed response; False if the connection is gone (closed by the client, or aborted)."""
        try:
            if self.transport is None:
                return False
            head = serialise_stream_head(response, stream, self.server.clock.date_line(), keep_alive)
            self.transport.write(head)
            if response.head_only or response.status in NO_BODY_STATUSES:
                return True
            chunked = stream.length is None
            async for chunk in stream:
                await self._drain()
                if self.transport is None:
                    return False
                if chunked:
                    if chunk:
                        self.transport.writelines((b"%x\r\n" % len(chunk), chunk, b"\r\n"))
                else:
                    self.transport.write(chunk)
            if chunked and self.transport is not None:
                self.transport.write(b"0\r\n\r\n")
            return self.transport is not None
        except StreamAborted as exc:
            logger.warning("Aborted the response to a request for a streamed body: %s", exc)
            if self.transport is not None:
                self.transport.abort()
            return False
        finally:
            await stream.aclose()
