"""The data port: a shared HTTP cache in front of one origin.

Only the configured origin is ever contacted: the request's Host header and any absolute-form target
are ignored, so the edge cannot be turned into an open proxy (no SSRF). Cache semantics are decided by
the pure modules (freshness, cachekey, responses); this module moves bytes and keeps the books.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from multidict import CIMultiDict

from edgefleet.cache_key import split_target
from edgefleet.warm_marker import HEADER as WARM_HEADER
from edgefleet.warm_marker import is_trusted_warm

from .body_check import CorruptBody, as_text, checksum
from .cachekey import accept_class, encoding_class, primary_key, secondary_key
from .collapsing import Fetched, Flight, HitForPass
from .decision import Outcome, Reuse, cache_status, current_age, decide, stale_on_error, vary_fields, vary_matches
from .fields import combined, field_lines
from .freshness import cache_control, format_http_date, initial_age, response_policy
from .messages import EdgeRequest, EdgeResponse, StreamAborted
from .metrics import EdgeMetrics
from .origin_client import OriginError, OriginPool, OriginResponse, OriginTimeout
from .plain_hits import CACHEABLE_METHODS, PlainHits
from .responses import (
    OWN_FIELDS,
    RECOMPUTED,
    RangePlan,
    end_to_end,
    multipart_layout,
    not_modified,
    plan_range,
)
from .store import Entry, Reservation, Store
from .streaming import FileBody, HeadOnly, LocalStream, MemorySegments, OriginBody, Segment, Transfer, segments_length

logger = logging.getLogger(__name__)


NOT_FORWARDED = frozenset({"CONNECT", "TRACE"})
"""CONNECT would make the edge a tunnel and TRACE echoes credentials (cross-site tracing): answered 405. Every
other method, known or not, is forwarded and, on success, invalidates the URL (RFC 9111 §4.4)."""
UNSHAREABLE_REASONS = frozenset({"private", "no-store", "set-cookie", "vary-star"})
"""Policy reasons that make a response personal: collapsed followers never get it, and the key is passed
straight to the origin for a while (hit-for-pass)."""


_NOT_TO_ORIGIN = frozenset(
    {"host", "content-length", "if-none-match", "if-modified-since", "range", "if-range", "expect", WARM_HEADER.lower()}
)
"""Request fields the edge sets itself (Host, framing, its own validators), that no longer apply (it fetches
whole representations, no Range, and has the whole request body already, no Expect), or that are for the edge
alone (the fleet's warm marker)."""


class OriginUnavailable(Exception):
    """The origin could not be reached, timed out, or answered 5xx."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class EdgeConfig:
    name: str
    origin: str
    grace: float = 3600.0
    allow_set_cookie: bool = False
    origin_timeout: float = 30.0
    max_body_in_flight: int = 64 * 1024 * 1024
    """Responses to unsafe methods (POST, PUT, ...) are read whole, up to this; GET bodies stream instead."""
    warm_token: str | None = None
    """The fleet's admin token: a request carrying its warm marker (``edgefleet.warm_marker``) is the fleet's own
    prewarm, stored without asking admission. None: no request is trusted as a warm request."""
    stream_threshold: int | None = None
    """Origin bodies larger than this, or of unknown size that grow past it, stream instead of being read
    whole. None: the memory tier's largest object, since a larger body could only be stored on disk anyway."""


async def _read_up_to(response: OriginResponse, limit: int) -> tuple[list[bytes], bool]:
    """Read a body of unknown size until it ends (True) or passes ``limit`` (False)."""
    chunks: list[bytes] = []
    total = 0
    async for chunk in response.iter_chunks():
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            return chunks, False
    return chunks, True


def _request_signature(key: str, headers: Mapping[str, str]) -> str:
    """Requests that would get the same response from the origin (for collapsing)."""
    accept, encoding = combined(headers, "Accept"), combined(headers, "Accept-Encoding")
    return f"{key}|{accept_class(accept)}|{encoding_class(encoding)}"


class CachingProxy:
    def __init__(self, config: EdgeConfig, store: Store, metrics: EdgeMetrics, origin: OriginPool) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self.origin = origin
        self.via = f"1.1 {config.name} (edgefleet)"
        self._inflight: dict[str, Flight] = {}
        self.stream_above = config.stream_threshold if config.stream_threshold is not None else store.max_memory_object
        self._revalidating: set[str] = set()
        self._hit_for_pass = HitForPass()
        self._background: set[asyncio.Task[None]] = set()
        self.plain = PlainHits(store, metrics, self._find, name=config.name, via=self.via,
                               stream_above=self.stream_above)  # fmt: skip
        """The hot path: fresh, plain hits answered as pre-built bytes (``plain_hits.py``)."""

    # ---- entry point ---------------------------------------------------------------------------

    async def handle(self, request: EdgeRequest) -> EdgeResponse:
        started = time.monotonic()
        method = request.method
        try:
            if method in CACHEABLE_METHODS:
                response, status_word = await self._cacheable(request)
            elif method == "OPTIONS" and request.target == "*":
                response, status_word = self._server_options(), "bypass"
            elif method in NOT_FORWARDED:
                response, status_word = self._error(405, "method not supported by the edge", "bypass"), "bypass"
            else:
                response, status_word = await self._pass_through(request), "bypass"
        except OriginUnavailable as exc:
            response, status_word = self._error(exc.status, exc.reason, "miss"), "miss"
        self.metrics.requests.labels(status_word, str(response.status)).inc()
        self.metrics.duration.labels(status_word).observe(time.monotonic() - started)
        return response

    # ---- GET / HEAD ----------------------------------------------------------------------------

    def _find(self, key: str, request: EdgeRequest) -> Entry | None:
        authorized = "Authorization" in request.headers
        for entry in self.store.variants(key):
            if not vary_matches(entry.vary, entry.variant, request.headers):
                continue
            if authorized and not _shareable_with_authorization(entry):
                continue
            return self.store.get(entry.id)
        return None

    async def _cacheable(self, request: EdgeRequest) -> tuple[EdgeResponse, str]:
        key = self.plain.request_key(request)
        entry = self._find(key, request)
        if entry is not None:
            try:
                return await self._reuse(request, key, entry)
            except CorruptBody:
                pass  # the store evicted the damaged body: this request is a miss
        fetched = await self._fetch(request, key, validators_from=None)
        if fetched.entry is not None or fetched.transfer is not None:
            return self._from_fetched(request, fetched, Outcome.MISS, "fwd=miss; stored"), "miss"
        if fetched.declined is not None:
            return self._from_fetched(request, fetched, Outcome.MISS, "fwd=miss"), "miss"
        return self._from_fetched(request, fetched, Outcome.BYPASS, "fwd=uri-miss"), "bypass"

    async def _reuse(self, request: EdgeRequest, key: str, entry: Entry) -> tuple[EdgeResponse, str]:
        """Answer from a stored entry, as ``decision.decide`` says: fresh, stale while revalidating, or after
        revalidating it (served stale if the origin fails and the response allowed it)."""
        decision = decide(entry, time.time())
        if decision.reuse is Reuse.FRESH:
            return self._from_entry(request, entry, Outcome.HIT, ttl=decision.ttl), "hit"
        if decision.reuse is Reuse.STALE_WHILE_REVALIDATE:
            self._revalidate_in_background(request, key, entry)
            return self._from_entry(request, entry, Outcome.STALE, ttl=decision.ttl, detail="fwd=stale"), "stale"
        try:
            fetched = await self._fetch(request, key, validators_from=entry)
        except OriginUnavailable as exc:
            if stale_on_error(entry, decision.age, self.config.grace):
                return self._from_entry(
                    request, entry, Outcome.STALE, ttl=decision.ttl, detail=f'fwd=stale; detail="{exc.reason}"'
                ), "stale"
            raise
        if fetched.status == 304 and fetched.entry is not None:
            return self._from_entry(
                request, fetched.entry, Outcome.REVALIDATED, detail="fwd=stale; fwd-status=304",
                extra=fetched.leader_only,
            ), "revalidated"  # fmt: skip
        if fetched.status >= 500 and stale_on_error(entry, decision.age, self.config.grace):
            fetched.discard()
            return self._from_entry(
                request, entry, Outcome.STALE, ttl=decision.ttl, detail=f"fwd=stale; fwd-status={fetched.status}"
            ), "stale"
        return self._from_fetched(request, fetched, Outcome.EXPIRED, "fwd=stale"), "expired"

    # ---- fetching (collapsed) ------------------------------------------------------------------

    async def _fetch(self, request: EdgeRequest, key: str, validators_from: Entry | None) -> Fetched:
        """One origin response for this request: collapsed with identical requests in flight when, and only
        when, the response is one a shared cache may give to all of them."""
        if "Authorization" in request.headers or self._hit_for_pass.active(key):
            return await self._fetch_from_origin(request, key, validators_from)
        signature = _request_signature(key, request.headers)
        flight = self._inflight.get(signature)
        # A fetch that began before a purge may bring back what the purge removed: a request that arrives
        # after the purge never joins it (the fetch's own result is stored as stale, see ``_complete``).
        if flight is not None and flight.generation == self.store.purge_generation:
            shared = await flight.follow()
            if shared is not None:
                if shared.shared_as is not None and vary_matches(
                    shared.shared_as.vary, shared.shared_as.variant, request.headers
                ):
                    return shared
                shared.discard()  # a variant for other request headers (Vary: Cookie, ...): ask for our own
                return await self._fetch_from_origin(request, key, validators_from)
            if flight.result is not None and flight.result.declined is not None:
                # Storable, but streamed through unstored: collapse behind a new leader, whose fetch is stored
                # (this is the object's second request), rather than each follower asking the origin.
                return await self._fetch(request, key, validators_from)
            # Not for sharing (personal, an error, or too large to store): this follower asks for its own, at once.
            return await self._fetch_from_origin(request, key, validators_from)
        flight = Flight(self.store.purge_generation)
        self._inflight[signature] = flight
        # The fleet's own warm request (an upload's prewarm) is stored on its first request, like one that
        # collapsed followers wait for: admission would otherwise make a large object wait for a shopper's second.
        warm = is_trusted_warm(self.config.warm_token, request.target, request.headers.get(WARM_HEADER))
        wanted = (lambda: True) if warm else flight.has_followers
        try:
            fetched = await self._fetch_from_origin(request, key, validators_from, wanted)
        except BaseException as exc:
            self._land(signature, flight)
            flight.fail(exc)
            raise
        transfer = fetched.transfer
        if transfer is not None and not (transfer.complete or transfer.failed):
            # Requests arriving while the body streams in join it from byte 0, until it is stored.
            transfer.on_end(lambda: self._land(signature, flight))
        else:
            self._land(signature, flight)
        flight.resolve(fetched)
        return fetched

    def _land(self, signature: str, flight: Flight) -> None:
        if self._inflight.get(signature) is flight:
            del self._inflight[signature]

    def _origin_headers(self, request: EdgeRequest) -> CIMultiDict[str]:
        headers: CIMultiDict[str] = CIMultiDict()
        for name, value in end_to_end(list(request.headers.items())):
            if name.lower() in _NOT_TO_ORIGIN:
                continue
            headers.add(name, value)
        peer = request.remote or ""
        previous = request.headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{previous}, {peer}" if previous else peer
        headers["Via"] = self.via
        return headers

    async def _fetch_from_origin(
        self,
        request: EdgeRequest,
        key: str,
        validators_from: Entry | None,
        contended: Callable[[], bool] = lambda: False,
    ) -> Fetched:
        """One origin request. ``contended`` says whether other requests are waiting for this response: they
        are the object's second request, so it is stored without asking admission."""
        headers = self._origin_headers(request)
        if validators_from is not None:
            if etag := validators_from.header("ETag"):
                headers["If-None-Match"] = etag
            if last_modified := validators_from.header("Last-Modified"):
                headers["If-Modified-Since"] = last_modified
        generation = self.store.purge_generation
        request_time = time.time()
        began = time.monotonic()
        try:
            response = await self.origin.request("GET", request.target, headers.items())
            try:
                head_seconds = time.monotonic() - began
                self.metrics.origin_duration.observe(head_seconds)
                self.metrics.origin_requests.labels(str(response.status)).inc()
                fetched = await self._receive(
                    request, key, validators_from, response, request_time, generation, contended
                )
                fetched.interim = _forwarded_interim(response)
                fetched.origin_seconds = head_seconds
            except BaseException:
                response.close()
                raise
        except OriginTimeout as exc:
            self.metrics.origin_requests.labels("timeout").inc()
            raise OriginUnavailable(504, "origin timed out") from exc
        except OriginError as exc:
            self.metrics.origin_requests.labels("error").inc()
            raise OriginUnavailable(502, "origin unreachable") from exc
        if fetched.stream is None:
            response.release()  # the body was read whole; a stream owns the response until it is closed
        return fetched

    async def _receive(
        self,
        request: EdgeRequest,
        key: str,
        validators_from: Entry | None,
        response: OriginResponse,
        request_time: float,
        generation: int,
        contended: Callable[[], bool],
    ) -> Fetched:
        response_time = time.time()
        status = response.status
        raw_headers = end_to_end(response.raw_headers)
        if status == 304 and validators_from is not None:
            refreshed = self._refresh(validators_from, raw_headers, request_time, response_time)
            # The 304 answered this client's request: its cookies are for this client alone (RFC 9111 §3.5 does
            # not let a shared cache keep them, and followers must never see them).
            own = [(name, value) for name, value in raw_headers if name.lower() == "set-cookie"]
            return Fetched(304, raw_headers, None, refreshed, shared_as=refreshed, leader_only=own)
        if status >= 500 and validators_from is not None:
            # Revalidation failed: the caller decides between the stale entry and this error; nothing is stored.
            return Fetched(status, raw_headers, await response.read(), None)
        entry, reason = self._storable_entry(request, key, status, raw_headers, request_time, response_time)
        if entry is None and reason in UNSHAREABLE_REASONS:
            self._hit_for_pass.mark(key)
        elif entry is not None:
            self._hit_for_pass.clear(key)
        declared = response.content_length
        prefix: list[bytes] = []
        if declared is not None and declared <= self.stream_above:
            body = await response.read()
            return self._complete(status, raw_headers, body, entry, generation, contended())
        if declared is None:
            # Unknown size: a body that ends within the threshold is a small one after all.
            prefix, whole = await _read_up_to(response, self.stream_above)
            if whole:
                body = b"".join(prefix)
                return self._complete(status, raw_headers, body, entry, generation, contended())
        size = max(declared or 0, sum(map(len, prefix)))
        if entry is not None and self.store.fits_disk(size) and (contended() or self.store.admits_to_disk(entry, size)):
            # Space for the whole body is held before it streams in (``--disk`` bounds bodies in flight too); None
            # when there is none, or after a disk error: served unstored, like any other.
            reservation = self.store.reserve_disk(size)
            if reservation is not None:
                return self._start_transfer(response, entry.headers, entry, prefix, declared, generation, reservation)
        # Uncacheable, larger than the disk tier, or not admitted (admission remembers it for the next request):
        # straight through to this one client, not stored. A storable one is reported as the miss it is.
        stream = HeadOnly(declared) if request.method == "HEAD" else OriginBody(response, declared, prefix)
        if request.method == "HEAD":
            response.close()
        return Fetched(status, raw_headers, None, None, stream=stream, declined=entry)

    def _start_transfer(
        self,
        response: OriginResponse,
        headers: list[tuple[str, str]],
        entry: Entry,
        prefix: list[bytes],
        declared: int | None,
        generation: int,
        reservation: Reservation,
    ) -> Fetched:
        transfer = Transfer(reservation.path, declared)
        reader = transfer.reader()
        fill = self._fill(transfer, response, entry, prefix, generation, reservation)
        task = asyncio.get_running_loop().create_task(fill)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return Fetched(response.status, headers, None, None, stream=reader, transfer=transfer, shared_as=entry)

    async def _fill(
        self,
        transfer: Transfer,
        response: OriginResponse,
        entry: Entry,
        prefix: list[bytes],
        generation: int,
        reservation: Reservation,
    ) -> None:
        """Receive the whole body into the transfer's file, at the origin's pace; store it only when whole.

        A body longer than its reservation (no Content-Length, or a wrong one) grows it; when the disk has no more
        room, the body is abandoned as unstored and still goes to every reader (``Transfer.abandon``)."""
        stored = False
        try:
            for chunk in prefix:
                await self._fill_chunk(transfer, reservation, chunk, entry.key)
            prefix.clear()
            async for chunk in response.iter_chunks():
                await self._fill_chunk(transfer, reservation, chunk, entry.key)
            if transfer.length is not None and transfer.written != transfer.length:
                raise StreamAborted(f"origin sent {transfer.written} of {transfer.length} bytes")
            entry.size, entry.checksum = transfer.written, as_text(transfer.crc)
            entry.stale = generation != self.store.purge_generation  # a purge raced this fetch
            if not transfer.abandoned:
                # Moves the file in (admission was asked before the transfer began), or removes it if it cannot fit.
                stored = True
                self.store.put(entry, reservation=reservation, admitted=True)
        except (OriginError, TimeoutError, OSError, StreamAborted) as exc:
            logger.warning("Origin body for %s failed after %d bytes: %s", entry.key, transfer.written,
                           exc or type(exc).__name__)  # fmt: skip
            transfer.fail()
            return
        except BaseException:
            transfer.fail()
            raise
        finally:
            response.release()  # back to the pool only if the body arrived whole
            if not stored:
                self.store.release(reservation)
        transfer.finish()

    async def _fill_chunk(self, transfer: Transfer, reservation: Reservation, chunk: bytes, key: str) -> None:
        if not transfer.abandoned and not self.store.grow_reservation(reservation, transfer.written + len(chunk)):
            logger.info("Stored no copy of %s: the disk tier has no room for more of it", key)
            transfer.abandon()
        if not transfer.abandoned:
            try:
                transfer.write(chunk)
                return
            except OSError as exc:  # ENOSPC, EIO: the disk's failure, not the origin's; the readers go on
                self.store.disk_failed(key, exc)
                transfer.abandon()
        await transfer.put(chunk)

    async def _read_body(self, response: OriginResponse) -> bytes:
        """Unsafe-method responses are read whole, up to ``max_body_in_flight``."""
        declared = response.content_length
        if declared is not None and declared > self.config.max_body_in_flight:
            raise OriginUnavailable(502, "origin response too large for this edge")
        chunks = []
        total = 0
        async for chunk in response.iter_chunks():
            total += len(chunk)
            if total > self.config.max_body_in_flight:
                raise OriginUnavailable(502, "origin response too large for this edge")
            chunks.append(chunk)
        return b"".join(chunks)

    def _storable_entry(
        self,
        request: EdgeRequest,
        key: str,
        status: int,
        headers: list[tuple[str, str]],
        request_time: float,
        response_time: float,
    ) -> tuple[Entry | None, str]:
        """The entry this response would be stored as (size and staleness set once the body is in), or None; and
        the policy's reason."""
        policy = response_policy(
            status,
            headers,
            now=response_time,
            request_has_authorization="Authorization" in request.headers,
            allow_set_cookie=self.config.allow_set_cookie,
        )
        vary = vary_fields(headers)
        if not policy.storable or request.method == "HEAD" or vary is None:
            if policy.reason in {"no-store", "private"}:
                # A new uncacheable response for this URL must not leave an old cacheable one behind.
                self.store.remove_key(key)
            return None, policy.reason if vary is not None else "vary-star"
        if not field_lines(headers, "Date"):
            # RFC 9110 §6.6.1: a recipient with a clock stores a response without Date with the time it arrived.
            headers = [*headers, ("Date", format_http_date(response_time))]
        entry = Entry(
            key=key,
            variant=secondary_key(vary, request.headers),
            path=request.path,
            status=status,
            headers=headers,
            size=0,
            request_time=request_time,
            response_time=response_time,
            initial_age=initial_age(headers, request_time, response_time),
            lifetime=policy.lifetime,
            stale_while_revalidate=policy.stale_while_revalidate,
            stale_if_error=policy.stale_if_error,
            must_revalidate=policy.must_revalidate,
            grace_allowed=policy.grace_allowed,
            vary=vary,
            surrogate_keys=tuple(" ".join(field_lines(headers, "Surrogate-Key")).split()),
        )
        return entry, policy.reason

    def _complete(
        self,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
        entry: Entry | None,
        generation: int,
        contended: bool,
    ) -> Fetched:
        """A whole body: stored when storable and admitted (or ``contended``: wanted by collapsed followers too);
        a declined one is still served from its entry. Only a storable response is ever shared with followers."""
        if entry is None:
            return Fetched(status, headers, body, None)
        entry.size, entry.checksum = len(body), as_text(checksum(body))
        entry.stale = generation != self.store.purge_generation  # a purge raced this fetch: revalidate next time
        if self.store.put(entry, body=body, admitted=contended):
            return Fetched(status, entry.headers, body, entry, shared_as=entry)
        entry.body = body  # not kept: the response is still served from it, once
        return Fetched(status, entry.headers, body, None, declined=entry, shared_as=entry)

    def _refresh(
        self, entry: Entry, headers: list[tuple[str, str]], request_time: float, response_time: float
    ) -> Entry:
        """RFC 9111 §4.3.4, §3.2: a 304 replaces the stored fields it carries (every line of each), keeping the body.

        Not taken from it: the body's framing and coding (Content-Length, Content-Encoding, Transfer-Encoding),
        and Set-Cookie, which is one client's and never stored by a shared cache."""
        excluded = {"content-length", "content-encoding", "transfer-encoding", "set-cookie"}
        replaced = {name.lower() for name, _ in headers} - excluded
        kept = [(name, value) for name, value in entry.headers if name.lower() not in replaced]
        entry.headers = kept + [(name, value) for name, value in headers if name.lower() in replaced]
        entry.hit_head = None  # the pre-serialised head carried the old headers
        policy = response_policy(entry.status, entry.headers, now=response_time,
                                 allow_set_cookie=self.config.allow_set_cookie)  # fmt: skip
        entry.request_time, entry.response_time = request_time, response_time
        entry.initial_age = initial_age(headers, request_time, response_time)
        if policy.storable:
            entry.lifetime = policy.lifetime
            entry.stale_while_revalidate, entry.stale_if_error = policy.stale_while_revalidate, policy.stale_if_error
            entry.must_revalidate, entry.grace_allowed = policy.must_revalidate, policy.grace_allowed
        else:
            # The origin no longer lets it be shared: every reuse asks it again, never stale.
            entry.lifetime, entry.stale_while_revalidate, entry.stale_if_error = 0.0, 0.0, 0.0
            entry.must_revalidate, entry.grace_allowed = True, False
        entry.stale = False
        self.store.update_meta(entry)
        return entry

    def _revalidate_in_background(self, request: EdgeRequest, key: str, entry: Entry) -> None:
        if entry.id in self._revalidating:
            return  # one refresh per object, however many requests see it stale
        self._revalidating.add(entry.id)

        async def refresh() -> None:
            try:
                (await self._fetch(request, key, validators_from=entry)).discard()
            except OriginUnavailable as exc:
                logger.warning("Background revalidation of %s failed: %s", key, exc.reason)
            finally:
                self._revalidating.discard(entry.id)

        task = asyncio.get_running_loop().create_task(refresh())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ---- building client responses -------------------------------------------------------------

    def _cache_headers(
        self, headers: CIMultiDict[str], outcome: Outcome, *, ttl: float | None, detail: str, age: float | None
    ) -> None:
        headers["X-Cache"] = outcome.value
        headers["Cache-Status"] = cache_status(self.config.name, outcome, ttl=ttl, detail=detail)
        headers["Via"] = self.via
        if age is not None:
            headers["Age"] = str(int(age))

    def _from_entry(
        self,
        request: EdgeRequest,
        entry: Entry,
        outcome: Outcome,
        *,
        ttl: float | None = None,
        detail: str = "",
        extra: list[tuple[str, str]] | None = None,
    ) -> EdgeResponse:
        """A response from a stored entry. ``extra`` are fields for this client alone (its own Set-Cookie)."""
        headers: CIMultiDict[str] = CIMultiDict((k, v) for k, v in entry.headers if k.lower() not in RECOMPUTED)
        for name, value in extra or ():
            headers.add(name, value)
        self._cache_headers(headers, outcome, ttl=ttl, detail=detail, age=current_age(entry, time.time()))
        if not_modified(entry, request.headers):
            for name in ("Content-Type", "Content-Length", "Content-Encoding"):
                headers.popall(name, None)
            return EdgeResponse(304, headers)
        # Range and If-Range are single values: a request with two Range lines is answered whole (RFC 9110 §14.2
        # lets a server ignore Range), rather than trusting either line.
        ranges, if_range = field_lines(request.headers, "Range"), field_lines(request.headers, "If-Range")
        single = len(ranges) == 1 and len(if_range) <= 1
        plan = plan_range(ranges[0] if single else None, if_range[0] if if_range else None, entry)
        headers["Accept-Ranges"] = "bytes"
        if plan.status == 416:
            headers["Content-Range"] = f"bytes */{entry.size}"
            return EdgeResponse(416, headers)
        if entry.body is None and entry.size > min(self.stream_above, self.store.inline_read):
            return self._from_body_file(request, entry, plan, headers)
        body = self.store.read_body(entry)
        if plan.status == 206:
            if len(plan.ranges) == 1:
                first, last = plan.ranges[0]
                headers["Content-Range"] = f"bytes {first}-{last}/{entry.size}"
                body = body[first : last + 1]
            else:
                content_type = headers.get("Content-Type", "application/octet-stream")
                segments, headers["Content-Type"] = multipart_layout(plan.ranges, content_type, entry.size)
                stream = HeadOnly(segments_length(segments)) if request.method == "HEAD" else None
                return self._stream_response(request, 206, headers, stream or MemorySegments(body, segments))
        status = 206 if plan.status == 206 else entry.status
        return self._body_response(request, status, headers, body)

    def _from_body_file(
        self, request: EdgeRequest, entry: Entry, plan: RangePlan, headers: CIMultiDict[str]
    ) -> EdgeResponse:
        """A large disk-tier object: only the bytes asked for are read, chunk by chunk (HEAD reads none)."""
        segments: list[Segment] = [(0, entry.size)]
        status = entry.status
        if plan.status == 206:
            status = 206
            if len(plan.ranges) == 1:
                first, last = plan.ranges[0]
                headers["Content-Range"] = f"bytes {first}-{last}/{entry.size}"
                segments = [(first, last - first + 1)]
            else:
                content_type = headers.get("Content-Type", "application/octet-stream")
                segments, headers["Content-Type"] = multipart_layout(plan.ranges, content_type, entry.size)
        path = self.store.body_file(entry)
        assert path is not None
        try:
            body = FileBody(path, segments)
        except FileNotFoundError as exc:
            self.store.corrupt(entry, "body file missing")
            raise CorruptBody(entry.id) from exc
        if body.file_size != entry.size:
            body.close()
            self.store.corrupt(entry, f"body file of {body.file_size} bytes, expected {entry.size}")
            raise CorruptBody(entry.id)
        if request.method == "HEAD":
            body.close()
            return self._stream_response(request, status, headers, HeadOnly(segments_length(segments)))
        if plan.status != 206 and entry.checksum:
            # A whole body is checked as it streams: a changed byte aborts the connection (the client never takes
            # it for complete) and evicts the entry. Ranges are checked by length only.
            body.verify(entry.checksum, lambda: self.store.corrupt(entry, "checksum mismatch while streaming"))
            if entry.size <= self.stream_above:
                body.on_whole(lambda data: self.store.promote(entry, data))  # read off the loop, then kept
        return self._stream_response(request, status, headers, body)

    def _from_fetched(self, request: EdgeRequest, fetched: Fetched, outcome: Outcome, detail: str) -> EdgeResponse:
        entry = fetched.entry or (fetched.declined if fetched.stream is None else None)
        if entry is not None and fetched.status == 200:
            fetched.discard()
            answer = self._from_entry(request, entry, outcome, detail=detail)
            answer.interim, answer.origin_seconds = fetched.interim, fetched.origin_seconds
            return answer
        # Passed through as the origin sent it: its own Age and Date stay (RFC 9111 §5.1, RFC 9110 §6.6.1).
        headers: CIMultiDict[str] = CIMultiDict((k, v) for k, v in fetched.headers if k.lower() not in OWN_FIELDS)
        stored = fetched.shared_as if (fetched.entry is not None or fetched.transfer is not None) else None
        age = current_age(stored, time.time()) if stored is not None else None
        self._cache_headers(headers, outcome, ttl=None, detail=detail, age=age)
        if fetched.stream is not None:
            answer = self._stream_response(request, fetched.status, headers, fetched.stream)
        else:
            answer = self._body_response(request, fetched.status, headers, fetched.body or b"")
        answer.interim, answer.origin_seconds = fetched.interim, fetched.origin_seconds
        return answer

    def _stream_response(
        self, request: EdgeRequest, status: int, headers: CIMultiDict[str], stream: LocalStream
    ) -> EdgeResponse:
        if status in (204, 304) or 100 <= status < 200:
            stream.close()
            return EdgeResponse(status, headers)
        head = request.method == "HEAD"
        if not head and stream.length is not None:
            self.metrics.bytes_served.inc(stream.length)
        return EdgeResponse(status, headers, head_only=head, stream=stream)

    def _body_response(self, request: EdgeRequest, status: int, headers: CIMultiDict[str], body: bytes) -> EdgeResponse:
        if status in (204, 304) or 100 <= status < 200:
            return EdgeResponse(status, headers)
        head = request.method == "HEAD"
        self.metrics.bytes_served.inc(0 if head else len(body))
        return EdgeResponse(status, headers, body, head_only=head)

    def _server_options(self) -> EdgeResponse:
        """``OPTIONS *`` asks about the server itself (RFC 9110 §9.3.7): the edge answers it, not the origin."""
        headers: CIMultiDict[str] = CIMultiDict({"Allow": "GET, HEAD, OPTIONS, POST, PUT, PATCH, DELETE"})
        self._cache_headers(headers, Outcome.BYPASS, ttl=None, detail="", age=None)
        return EdgeResponse(200, headers)

    def _error(self, status: int, reason: str, word: str) -> EdgeResponse:
        headers: CIMultiDict[str] = CIMultiDict({"Content-Type": "text/plain; charset=utf-8"})
        outcome = Outcome.BYPASS if word == "bypass" else Outcome.MISS
        self._cache_headers(headers, outcome, ttl=None, detail=f'fwd=miss; detail="{reason}"', age=None)
        headers["Cache-Control"] = "no-store"
        return EdgeResponse(status, headers, f"{status} {reason}\n".encode())

    # ---- unsafe methods ------------------------------------------------------------------------

    async def _pass_through(self, request: EdgeRequest) -> EdgeResponse:
        """Forward unsafe methods; a non-error answer invalidates what we store for the URL (RFC 9111 §4.4)."""
        headers = self._origin_headers(request)
        try:
            response = await self.origin.request(request.method, request.target, headers.items(), request.body)
            try:
                self.metrics.origin_requests.labels(str(response.status)).inc()
                body = await self._read_body(response)
            finally:
                response.release()
            out: CIMultiDict[str] = CIMultiDict(
                (k, v) for k, v in end_to_end(response.raw_headers) if k.lower() not in OWN_FIELDS
            )
            status = response.status
        except OriginTimeout as exc:
            raise OriginUnavailable(504, "origin timed out") from exc
        except OriginError as exc:
            raise OriginUnavailable(502, "origin unreachable") from exc
        if status < 400:
            self.store.remove_key(primary_key(*split_target(request.target)))
            for name in ("Location", "Content-Location"):
                target = out.get(name)
                if target:
                    path = _same_host_path(target, request.host)
                    if path is not None:
                        self.store.remove_key(primary_key(*path))
        self._cache_headers(out, Outcome.BYPASS, ttl=None, detail="fwd=method", age=None)
        return EdgeResponse(status, out, body, interim=_forwarded_interim(response))

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _forwarded_interim(response: OriginResponse) -> list[tuple[int, list[tuple[str, str]]]]:
    """The origin's 1xx responses a proxy forwards (RFC 9110 §15.2): all but 100 Continue, which answered the
    edge's own request (the edge already holds the whole body), and 101, which it never asks for."""
    return [(interim.status, end_to_end(interim.headers)) for interim in response.interim
            if interim.status not in (100, 101)]  # fmt: skip


def _shareable_with_authorization(entry: Entry) -> bool:
    """RFC 9111 §3.5: stored responses may answer requests with Authorization only when they said so."""
    directives = cache_control(entry.headers)
    return "public" in directives or "s-maxage" in directives or "must-revalidate" in directives


def _same_host_path(target: str, host: str) -> tuple[str, str] | None:
    from urllib.parse import urlsplit

    parts = urlsplit(target)
    if parts.netloc and parts.netloc != host:
        return None
    return parts.path or "/", parts.query
