"""The edge's access log: one JSON line per request on standard output, for Loki/Promtail or ``kubectl logs | jq``.

Written by hand rather than through ``logging`` because it runs on every hit: a line is one bytes formatting
operation into a buffer, and the buffer goes out in writes of at most ``PIPE_BUF`` bytes (so lines from the
processes of ``--workers`` never interleave mid-line in the container runtime's pipe), when it fills or once a
second. The timestamp is formatted once per second.

Fields: ``time`` (RFC 3339, UTC, seconds), ``client``, ``method``, ``target`` (as received), ``status``,
``bytes`` (bytes sent, head included; a streamed body counts its announced length), ``cache`` (the ``X-Cache`` word),
``origin_ms`` (time to the origin's response head, or null when the origin was not asked), ``ms`` (time to answer).
"""

from __future__ import annotations

import json
import logging
import os
import time

logger = logging.getLogger(__name__)

FLUSH_AT = 3584
"""Buffered bytes that trigger a write: below PIPE_BUF (4096), so a write to a pipe is atomic (POSIX)."""
MAX_BUFFERED = 4 * 2**20
"""If standard output stops draining, lines beyond this are dropped (and counted), never held without bound."""

_LINE = (
    b'{"time":"%s","client":"%s","method":"%s","target":"%s","status":%d,"bytes":%d,"cache":"%s",'
    b'"origin_ms":%s,"ms":%.3f}\n'
)


def _json_text(text: str) -> bytes:
    """A string's JSON form without its quotes (targets may hold quotes, backslashes or any Latin-1 byte)."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return text.encode()
    return json.dumps(text)[1:-1].encode()


class AccessLog:
    def __init__(self, fd: int = 1) -> None:
        self.fd = fd
        self.dropped = 0
        self._lines: list[bytes] = []
        self._size = 0
        self._second = -1
        self._stamp = b""

    def _time(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)).encode()
        return self._stamp

    def hit(self, client: bytes, head_only: bool, target: bytes, size: int, seconds: float) -> None:
        """A request answered on the hot path: a fresh 200 from memory."""
        if b'"' in target or b"\\" in target:
            target = _json_text(target.decode("latin-1"))
        method = b"HEAD" if head_only else b"GET"
        line = _LINE % (self._time(), client, method, target, 200, 0 if head_only else size, b"HIT", b"null",
                        seconds * 1000.0)  # fmt: skip
        self._add(line)

    def request(self, client: bytes, method: str, target: str, status: int, size: int, cache: str,
                origin_seconds: float | None, seconds: float) -> None:  # fmt: skip
        origin = b"null" if origin_seconds is None else b"%.3f" % (origin_seconds * 1000.0)
        line = _LINE % (self._time(), client, _json_text(method), _json_text(target), status, size,
                        _json_text(cache), origin, seconds * 1000.0)  # fmt: skip
        self._add(line)

    def _add(self, line: bytes) -> None:
        if self._size > MAX_BUFFERED:
            self.dropped += 1
            return
        self._lines.append(line)
        self._size += len(line)
        if self._size >= FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered, in line-aligned pieces of at most PIPE_BUF bytes."""
        lines, self._lines, self._size = self._lines, [], 0
        piece: list[bytes] = []
        length = 0
        try:
            for line in lines:
                if piece and length + len(line) > FLUSH_AT:
                    os.write(self.fd, b"".join(piece))
                    piece, length = [], 0
                piece.append(line)
                length += len(line)
            if piece:
                os.write(self.fd, b"".join(piece))
        except BlockingIOError:
            self.dropped += len(lines)
        except OSError as exc:  # a closed stdout must not take the edge down with it
            self.dropped += len(lines)
            logger.warning("Access log write failed: %s", exc)
