"""The edge's own request and response types, independent of any HTTP server library.

The proxy logic speaks only these; the data port (``protocol.py``, httptools) turns bytes into them and back, so
the logic is tested without sockets where it can be.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

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
    http_version: str = "1.1"


class StreamAborted(Exception):
    """A streamed body cannot be completed (the origin failed mid-body): the client's connection must be
    aborted, never ended as if the body were whole."""


class BodyStream(Protocol):
    """A body too large to hold in memory, sent chunk by chunk.

    Adapters iterate it at most once, then always call ``aclose`` (also when they never iterate: HEAD, or
    the client went away). Iteration raises ``StreamAborted`` when the body cannot be completed.
    """

    length: int | None
    """The Content-Length to send; None means the size is unknown (chunked transfer coding)."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


@dataclass
class EdgeResponse:
    status: int
    headers: CIMultiDict[str] = field(default_factory=CIMultiDict)
    body: bytes = b""
    head_only: bool = False
    """HEAD: send the headers (with the body's Content-Length), not the body."""
    stream: BodyStream | None = None
    """When set, the body is this stream and ``body`` is unused."""
    interim: list[tuple[int, list[tuple[str, str]]]] = field(default_factory=list)
    origin_seconds: float | None = None
    """How long the origin took to send its response head, when the origin was asked (for the access log)."""
    """Interim (1xx) responses from the origin, sent before this one to an HTTP/1.1 client (RFC 9110 §15.2)."""
