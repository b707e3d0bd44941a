"""Building responses from stored entries: conditional requests, ranges, and the cache's own headers.

Pure: entries and request headers in, (status, headers, body parts) out.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from .fields import Headers, combined, field_lines
from .freshness import parse_http_date
from .store import Entry

# RFC 9110 §7.6.1 and the proxy-specific ones: never forwarded, whatever Connection says.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te",
     "trailer", "transfer-encoding", "upgrade"}
)  # fmt: skip
OWN_FIELDS = frozenset({"content-length", "x-cache", "cache-status", "via"})
"""Fields the edge writes itself on every response it forwards: the framing, and what it says about itself."""
RECOMPUTED = OWN_FIELDS | {"age"}
"""... and on responses from storage, Age too (RFC 9111 §4.2.3: the current age, not the stored one). Date is
kept: it says when the origin made the response (RFC 9110 §6.6.1), and stored responses always have one."""


def end_to_end(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Drop hop-by-hop headers and those named in Connection (RFC 9110 §7.6.1)."""
    listed = set()
    for name, value in headers:
        if name.lower() == "connection":
            listed |= {token.strip().lower() for token in value.split(",")}
    return [(n, v) for n, v in headers if n.lower() not in HOP_BY_HOP and n.lower() not in listed]


def etag_matches(if_none_match: str, etag: str | None) -> bool:
    """Weak comparison (RFC 9110 §13.1.2)."""
    if etag is None:
        return False
    if if_none_match.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(candidate.strip().removeprefix("W/") == wanted for candidate in if_none_match.split(","))


def not_modified(entry: Entry, request: Headers) -> bool:
    """Whether a client's conditional GET/HEAD is answered 304 from ``entry`` (RFC 9110 §13.2.2)."""
    if entry.status != 200:
        return False
    inm = combined(request, "If-None-Match")  # a list: every line counts (RFC 9110 §5.3)
    if inm is not None:
        return etag_matches(inm, entry.header("ETag"))
    since = field_lines(request, "If-Modified-Since")
    ims = parse_http_date(since[0]) if len(since) == 1 else None
    if ims is None:
        return False
    last_modified = parse_http_date(entry.header("Last-Modified"))
    return last_modified is not None and last_modified <= ims


@dataclass(frozen=True)
class RangePlan:
    status: int
    """206, 416, or 200 (range ignored)."""
    ranges: tuple[tuple[int, int], ...] = ()
    """Inclusive (first, last) byte positions."""


def plan_range(range_header: str | None, if_range: str | None, entry: Entry) -> RangePlan:
    """RFC 9110 §14: serve byte ranges of a complete stored 200 response."""
    if range_header is None or entry.status != 200:
        return RangePlan(200)
    if if_range is not None:
        etag = entry.header("ETag")
        if if_range.startswith(('"', "W/")):
            # If-Range needs a strong match (RFC 9110 §13.1.5).
            if etag is None or etag.startswith("W/") or if_range.strip() != etag:
                return RangePlan(200)
        else:
            if parse_http_date(if_range) != parse_http_date(entry.header("Last-Modified")):
                return RangePlan(200)
    unit, _, spec = range_header.partition("=")
    if unit.strip().lower() != "bytes" or not spec.strip():
        return RangePlan(200)
    size = entry.size
    ranges = []
    for part in spec.split(","):
        first_text, dash, last_text = part.strip().partition("-")
        if not dash:
            return RangePlan(200)  # malformed: ignore the Range header, as RFC 9110 allows
        first_text, last_text = first_text.strip(), last_text.strip()
        if not (first_text.isdigit() or first_text == "") or not (last_text.isdigit() or last_text == ""):
            return RangePlan(200)  # RFC 9110 §14.1.1: positions are DIGITs; anything else is malformed
        if first_text == "":
            if last_text == "":
                return RangePlan(200)
            suffix = int(last_text)
            if suffix <= 0:
                continue
            first, last = max(0, size - suffix), size - 1
        else:
            first = int(first_text)
            last = int(last_text) if last_text else size - 1
            if first >= size:
                continue  # unsatisfiable part (RFC 9110 §14.1.2), open-ended or not
        if first > last:
            return RangePlan(200)
        ranges.append((first, min(last, size - 1)))
    if not ranges:
        return RangePlan(416)
    ranges = coalesce(ranges)
    if len(ranges) > MAX_RANGES:
        return RangePlan(200)  # many small ranges are a denial-of-service pattern (RFC 9110 §14.2); send it whole
    return RangePlan(206, tuple(ranges))


MAX_RANGES = 16
"""Parts in one multipart/byteranges answer, after coalescing; more are answered with the whole object."""
COALESCE_GAP = 80
"""Ranges closer than this are sent as one part: a part's own header costs about as much (RFC 9110 §14.2)."""


def coalesce(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping, adjacent and nearly adjacent ranges merged, in ascending order (RFC 9110 §14.2 allows it).

    Invariant: the parts never add up to more than the object, however the client wrote them, so a short Range
    header can never make the edge send (or hold) many times an object's size.
    """
    merged: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + 1 + COALESCE_GAP:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def multipart_layout(
    ranges: tuple[tuple[int, int], ...], content_type: str, size: int
) -> tuple[list[bytes | tuple[int, int]], str]:
    """multipart/byteranges (RFC 9110 §14.6) as segments: literal bytes, or (offset, count) of the body."""
    boundary = secrets.token_hex(12)
    segments: list[bytes | tuple[int, int]] = []
    for first, last in ranges:
        head = f"--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: bytes {first}-{last}/{size}\r\n\r\n"
        segments.append(head.encode())
        segments.append((first, last - first + 1))
        segments.append(b"\r\n")
    segments.append(f"--{boundary}--\r\n".encode())
    return segments, f"multipart/byteranges; boundary={boundary}"
