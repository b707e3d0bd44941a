"""Recognising the commonest request of all without a parser: one whole, bodiless GET or HEAD in one read.

A browser or a balancer asking for a product photo sends ``GET /path HTTP/1.1`` and a few header lines,
and the whole request arrives in one ``data_received``. llhttp (httptools) parses that in C, but calls
back into Python for the URL and for every header line and has us build a header mapping, which costs more
than answering the hit itself. This module accepts a strict subset of RFC 9112 with a handful of C-level
bytes operations and one regular expression; whatever falls outside that subset — another method, a
body, a conditional or range, credentials, an upgrade, an odd header, a partial or pipelined read, an
over-long request — is not recognised, and the caller feeds the same bytes to the full parser, which then
applies every limit and rejection. So the subset can only ever be answered the way the parser would answer
it, never more leniently: no framing header is accepted here (no request smuggling), every field line must
be ``token ":" field-value`` with no bare CR or LF and no obs-fold (RFC 9112 §5.1-5.2).
"""

from __future__ import annotations

import re
from typing import NamedTuple

# RFC 9112 §3: method SP request-target SP HTTP-version. GET and HEAD in origin-form only (§3.2.1): the
# absolute form and anything with a fragment or a control character go to the parser.
_REQUEST_LINE = re.compile(rb"(GET|HEAD) (/[!-\"$-~]*) HTTP/1\.1")
# RFC 9110 §5.1: field-name = token; §5.5: field-value is VCHAR, SP, HTAB and obs-text. One field line each.
_FIELD_LINES = re.compile(rb"(?:\r\n[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*)*")
# Request fields that change framing or need the general path. ``\r\n`` before the name anchors it to the
# start of a field line (the block starts with one), so a value that merely contains the text does not count.
_NEEDS_GENERAL_PATH = re.compile(
    rb"\r\n(?:content-length|transfer-encoding|range|if-[a-z-]*|authorization|upgrade|expect):"
)

_KEEP_ALIVE = re.compile(rb"\r\nconnection:[ \t]*keep-alive[ \t]*(?:\r\n|$)")

MAX_PLAIN_REQUEST = 8192
"""Longer requests go to the parser, which enforces the real target and header limits."""


class PlainRequest(NamedTuple):
    head: bool
    """HEAD rather than GET."""
    target: bytes
    """The request target exactly as received (origin-form, percent-encoded)."""
    accept: str | None
    accept_encoding: str | None


def _field(lowered: bytes, raw: bytes, name: bytes) -> str | None:
    """The first value of field ``name`` (given as ``\r\nname:``), as the parser's mapping would give it."""
    start = lowered.find(name)
    if start < 0:
        return None
    start += len(name)
    end = raw.find(b"\r\n", start)
    value = raw[start : end if end >= 0 else len(raw)].strip(b" \t")
    return value.decode("latin-1") if value else None


def recognise_plain(data: bytes, max_headers: int = 100) -> PlainRequest | None:
    """The request in ``data`` when it is exactly one plain GET/HEAD (see the module docstring), else None.

    A recognised request is always keep-alive (HTTP/1.1's default, RFC 9112 §9.3): a ``Connection`` field
    other than a lone ``keep-alive`` (as browsers send) is left to the parser.
    """
    size = len(data)
    if size > MAX_PLAIN_REQUEST:
        return None
    line_end = data.find(b"\r\n")
    if line_end < 0 or data.find(b"\r\n\r\n", line_end) != size - 4:
        return None  # incomplete, or a second request or a body behind this one: the parser's job
    request_line = _REQUEST_LINE.fullmatch(data, 0, line_end)
    if request_line is None:
        return None
    block = data[line_end : size - 4]  # starts with the request line's CRLF, ends before the blank line
    if _FIELD_LINES.fullmatch(block) is None or block.count(b"\r\n") > max_headers:
        return None
    lowered = block.lower()
    if _NEEDS_GENERAL_PATH.search(lowered) is not None:
        return None
    if b"\r\nconnection:" in lowered and (
        lowered.count(b"\r\nconnection:") != 1 or _KEEP_ALIVE.search(lowered) is None
    ):
        return None
    return PlainRequest(
        request_line.group(1) == b"HEAD",
        request_line.group(2),
        _field(lowered, block, b"\r\naccept:"),
        _field(lowered, block, b"\r\naccept-encoding:"),
    )
