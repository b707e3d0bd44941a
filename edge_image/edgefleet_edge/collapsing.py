"""Request collapsing: one origin fetch per request signature, its response shared with the followers.

A follower gets the leader's response once its head is known: a complete small body as is, or its own reader of
a large body that is being stored (``streaming.Transfer``), so followers receive the body as it streams in. A
response that is not for sharing (uncacheable, or too large to store) sends the followers to the origin at
once: they are neither held back until it ends nor handed another client's uncacheable response.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass

from .store import Entry
from .streaming import LocalStream, Transfer


@dataclass
class Fetched:
    """An origin response as one client gets it: complete (``body``), or streaming (``stream``)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes | None
    entry: Entry | None
    """The stored entry, when the response was stored."""
    stream: LocalStream | None = None
    """This client's own body stream: a reader of ``transfer``, or the origin's body passed through."""
    transfer: Transfer | None = None
    """The large body being stored, which collapsed followers read too."""
    shared: bool = True
    """Whether collapsed followers may be given this response; if not, they ask the origin themselves."""
    declined: Entry | None = None
    """A storable response the store's admission did not keep: a whole body is served from this entry;
    a streamed one passes through (its next request may be stored)."""

    def for_follower(self) -> Fetched | None:
        if not self.shared:
            return None
        if self.transfer is not None:
            return dataclasses.replace(self, stream=self.transfer.reader())
        return self

    def discard(self) -> None:
        """Release the body stream of a response nobody will send."""
        if self.stream is not None:
            self.stream.close()
            self.stream = None


class Flight:
    """One origin fetch in progress and the collapsed followers waiting for its response head."""

    def __init__(self) -> None:
        self.result: Fetched | None = None
        self.waiters: list[asyncio.Future[Fetched | None]] = []

    def has_followers(self) -> bool:
        return bool(self.waiters)

    async def follow(self) -> Fetched | None:
        """The leader's response for this follower (its own reader of a streaming body), or None if not shared."""
        if self.result is not None:
            return self.result.for_follower()
        waiter: asyncio.Future[Fetched | None] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                given = waiter.result()
                if given is not None:
                    given.discard()  # handed over just as this follower's client went away
            raise

    def resolve(self, fetched: Fetched) -> None:
        """Each follower's copy is made now, synchronously, so a streaming body is still open for all of them."""
        self.result = fetched
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(fetched.for_follower())
        self.waiters.clear()

    def fail(self, exc: BaseException) -> None:
        """Followers share the origin's failure; if the leader was cancelled (its client left), they fetch."""
        for waiter in self.waiters:
            if not waiter.done():
                if isinstance(exc, asyncio.CancelledError):
                    waiter.set_result(None)
                else:
                    waiter.set_exception(exc)
        self.waiters.clear()
