"""Request collapsing: one origin fetch per request signature, its response shared with the followers.

A follower gets the leader's response once its head is known: a complete small body as is, or its own reader of
a large body that is being stored (``streaming.Transfer``), so followers receive the body as it streams in.

Invariant: a follower is only ever handed a response that a shared cache may store (``Fetched.shared_as``), for
the variant its own request selects (the proxy checks Vary). A personal response (private, no-store, Set-Cookie,
Vary: *), an error, or one too large to store sends the followers to the origin at once, each on its own: they are
neither held back until it ends nor handed another client's answer. A key whose response was personal is then
passed straight to the origin for a while (``HitForPass``), so the next burst does not queue behind one leader.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

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
    shared_as: Entry | None = None
    """The storable entry this response is (stored or not): only then may collapsed followers be given it."""
    leader_only: list[tuple[str, str]] = field(default_factory=list)
    """Fields for the leader's client alone (the Set-Cookie of the 304 that revalidated for it)."""
    interim: list[tuple[int, list[tuple[str, str]]]] = field(default_factory=list)
    """The origin's 1xx responses before this one: forwarded to the leader's client only."""
    origin_seconds: float | None = None
    """Time to the origin's response head (for the access log)."""
    declined: Entry | None = None
    """A storable response the store's admission did not keep: a whole body is served from this entry;
    a streamed one passes through (its next request may be stored)."""

    def for_follower(self) -> Fetched | None:
        if self.shared_as is None or (self.stream is not None and self.transfer is None):
            return None
        if self.transfer is not None:
            if self.transfer.abandoned:
                # Past its file, an abandoned transfer holds one chunk for the readers it already has: a new reader
                # could not be given the body from byte 0. Unstored anyway, so this follower fetches its own.
                return None
            return dataclasses.replace(self, stream=self.transfer.reader(), leader_only=[], interim=[])
        return dataclasses.replace(self, leader_only=[], interim=[])

    def discard(self) -> None:
        """Release the body stream of a response nobody will send."""
        if self.stream is not None:
            self.stream.close()
            self.stream = None


class Flight:
    """One origin fetch in progress and the collapsed followers waiting for its response head."""

    def __init__(self, generation: int) -> None:
        self.generation = generation
        """The store's purge generation when the fetch began: a request arriving after a purge does not join."""
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


HIT_FOR_PASS_SECONDS = 30.0
"""How long a key whose response was personal skips collapsing. Varnish's hit-for-miss does the same (its default
is 120 s); shorter here, because collapsing is worth more to a shop's cold product photos than to its carts."""
HIT_FOR_PASS_KEYS = 65_536


class HitForPass:
    """Keys whose last response was personal: their requests go to the origin without queueing behind a leader."""

    def __init__(self, seconds: float = HIT_FOR_PASS_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self._until: dict[str, float] = {}

    def mark(self, key: str) -> None:
        if len(self._until) >= HIT_FOR_PASS_KEYS:
            now = self.clock()
            self._until = {k: t for k, t in self._until.items() if t > now}
            if len(self._until) >= HIT_FOR_PASS_KEYS:
                self._until.clear()  # bounded: forgetting only costs a queue, never correctness
        self._until[key] = self.clock() + self.seconds

    def clear(self, key: str) -> None:
        self._until.pop(key, None)

    def active(self, key: str) -> bool:
        until = self._until.get(key)
        if until is None:
            return False
        if until <= self.clock():
            del self._until[key]
            return False
        return True
