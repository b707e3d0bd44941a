"""The edge's own request and response types, independent of any HTTP server library.

The proxy logic speaks only these, so the same logic runs behind aiohttp and behind the httptools
protocol (``protocol.py``), and the same test suite checks both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from multidict import CIMultiDict, CIMultiDictProxy


@dataclass(frozen=True)
class EdgeRequest:
    method: str
    path: str
    """Percent-decoded path: what cache keys and purges are made of."""
    query_string: str
    target: str
    """The path and query exactly as received (percent-encoded): what is forwarded to the origin."""
    headers: CIMultiDictProxy[str]
    remote: str = ""
    host: str = ""
    body: bytes = b""


@dataclass
class EdgeResponse:
    status: int
    headers: CIMultiDict[str] = field(default_factory=CIMultiDict)
    body: bytes = b""
    head_only: bool = False
    """HEAD: send the headers (with the body's Content-Length), not the body."""
