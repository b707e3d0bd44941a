"""Byte ranges (RFC 9110 §14): which part of a representation a ``Range`` header asks for.

Only single ranges are served. A multi-range request is answered with the whole representation, which
RFC 9110 §14.2 allows ("a server MAY ignore the Range header field"). A ``bytes=`` header that does not
parse, or asks only for bytes past the end, is answered 416 so a broken client learns why.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from edgefleet_origin.errors import RangeNotSatisfiable

_SPEC = re.compile(r"(\d*)-(\d*)")


class ByteRange(NamedTuple):
    start: int
    end: int  # inclusive, as in Content-Range

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The single range to serve, or ``None`` for the whole representation."""
    if header is None:
        return None
    unit, sep, specs = header.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes":
        # RFC 9110 §14.2: a range unit the server does not understand MUST be ignored.
        return None
    parts = [p.strip() for p in specs.split(",")]
    if len(parts) > 1:
        for part in parts:
            _parse_spec(part, size)  # still reject garbage
        return None
    spec = _parse_spec(parts[0], size)
    if spec is None:
        raise RangeNotSatisfiable(f"range {header!r} starts past the end ({size} bytes)", size=size)
    return spec


def _parse_spec(spec: str, size: int) -> ByteRange | None:
    match = _SPEC.fullmatch(spec)
    if match is None or (not match.group(1) and not match.group(2)):
        raise RangeNotSatisfiable(f"malformed byte range {spec!r}", size=size)
    first, last = match.group(1), match.group(2)
    if not first:  # suffix range: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            return None
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    end = int(last) if last else size - 1
    if end < start:
        raise RangeNotSatisfiable(f"byte range {spec!r} ends before it starts", size=size)
    if start >= size:
        return None
    return ByteRange(start, min(end, size - 1))
