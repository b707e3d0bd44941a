"""The one serialiser of response heads (RFC 9112 §4, §5): status line and field lines as bytes.

The general path (``protocol.serialise``) and the hot path's pre-built heads (``plain_hits``) both write heads with
these functions, so a hit looks the same whichever path answered it.
"""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus

STATUS_LINES = {status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode() for status in HTTPStatus}


def status_line(status: int) -> bytes:
    return STATUS_LINES.get(status) or f"HTTP/1.1 {status} Unknown\r\n".encode()


def field_block(fields: Iterable[tuple[str, str]]) -> bytes:
    """``name: value`` lines. Values come from the origin or from us; a CR or LF inside one would split the
    line (response splitting), so they are replaced, as is anything outside Latin-1."""
    out = []
    for name, value in fields:
        line = f"{name}: {value}\r\n"
        if "\r" in value or "\n" in value:
            line = f"{name}: {value.replace(chr(13), ' ').replace(chr(10), ' ')}\r\n"
        out.append(line.encode("latin-1", errors="replace"))
    return b"".join(out)


def head(status: int, fields: Iterable[tuple[str, str]], *extra: bytes) -> bytes:
    """Status line, the fields, then ``extra`` pre-serialised lines (framing, Date, Connection), then the blank line."""
    return b"".join((status_line(status), field_block(fields), *extra, b"\r\n"))
