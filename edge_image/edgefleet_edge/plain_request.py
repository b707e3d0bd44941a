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

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"  # RFC 9110 §5.1: field-name = token
_FIELD_VALUE = rb"[\t\x20-\x7e\x80-\xff]*"  # §5.5: VCHAR, SP, HTAB, obs-text; never a bare CR or LF
# Field names that change framing or need the general path, matched case-insensitively at the start of a line
# (a prefix is enough to refuse: refusing costs only the parser's time). Connection is accepted only as a lone
# ``keep-alive``, as browsers send it.
_NEEDS_GENERAL_PATH = (
    rb"content-length|transfer-encoding|range|if-|authorization|upgrade|expect"
    rb"|connection(?![ \t]*:[ \t]*keep-alive[ \t]*\r\n)"
)
# The whole request in one pass (RFC 9112 §3, §5): ``GET|HEAD SP origin-form SP HTTP/1.1``, field lines, the
# blank line, and nothing after it. Origin-form only (§3.2.1): no absolute form, no fragment, no control
# characters. One compiled expression is a third of the cost of the same checks as separate bytes operations.
_PLAIN_REQUEST = re.compile(
    rb"(GET|HEAD) (/[!-\"$-~]*) HTTP/1\.1"
    rb"((?:\r\n(?!(?i:" + _NEEDS_GENERAL_PATH + rb"))" + _TOKEN + rb":" + _FIELD_VALUE + rb")*)"
    rb"\r\n\r\n"
)

MAX_PLAIN_REQUEST = 8192
"""Longer requests go to the parser, which enforces the real target and header limits."""


PlainRequest = tuple[bool, bytes, str | None, str | None]
"""(HEAD rather than GET, the target exactly as received (origin-form, percent-encoded), Accept,
Accept-Encoding). A plain tuple: a NamedTuple costs ten times as much to build, on every hit."""


class _Repeated(Exception):
    """A field the recogniser reads arrives on two lines: the general path combines them (RFC 9110 §5.3)."""


def _field(lowered: bytes, raw: bytes, name: bytes) -> str | None:
    """The value of field ``name`` (given as ``\r\nname:``), as the parser's mapping would give it."""
    start = lowered.find(name)
    if start < 0:
        return None
    start += len(name)
    if lowered.find(name, start) >= 0:
        raise _Repeated
    end = raw.find(b"\r\n", start)
    value = raw[start : end if end >= 0 else len(raw)].strip(b" \t")
    return value.decode("latin-1") if value else None


def recognise_plain(data: bytes, max_headers: int = 100) -> PlainRequest | None:
    """The request in ``data`` when it is exactly one plain GET/HEAD (see the module docstring), else None.

    A recognised request is always keep-alive (HTTP/1.1's default, RFC 9112 §9.3).
    """
    if len(data) > MAX_PLAIN_REQUEST:
        return None
    match = _PLAIN_REQUEST.fullmatch(data)
    if match is None:
        return None
    method, target, block = match.groups()
    if block.count(b"\r\n") > max_headers:
        return None
    lowered = block.lower()
    if lowered.count(b"\r\nhost:") != 1:
        return None  # RFC 9112 §3.2: exactly one Host, or the parser's 400
    try:
        return (
            method == b"HEAD",
            target,
            _field(lowered, block, b"\r\naccept:"),
            _field(lowered, block, b"\r\naccept-encoding:"),
        )
    except _Repeated:
        return None
