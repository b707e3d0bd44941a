"""The hot path: a fresh, plain GET/HEAD hit on a stored object answered as pre-built bytes.

Written by hand because the hit path is the product (STYLE: "hot paths are designed, not hoped for"): one
memoised key, one dictionary lookup, a response head serialised once per stored object, and metrics tallied
in plain numbers (``metrics.PlainHitTally``). Anything that is not a fresh, unconditional, uncredentialed hit
on a 200 returns None, and ``CachingProxy.handle`` answers it with the full semantics; the edge suite runs
every behaviour through both, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable

from .body_check import CorruptBody
from .cachekey import primary_key, secondary_key
from .decision import fresh_age
from .freshness import format_http_date
from .messages import EdgeRequest
from .metrics import EdgeMetrics
from .plain_request import PlainRequest
from .response_head import field_block, status_line
from .responses import RECOMPUTED
from .store import Entry, Store

CACHEABLE_METHODS = frozenset({"GET", "HEAD"})
KEY_MEMO_SIZE = 65_536
VECTORED_BODY = 64 * 1024
"""Hit bodies this large are written beside their head (one writev) rather than copied into one buffer with it:
copying 200 KB costs about 5 µs, a tenth of such a hit."""
PlainHit = bytes | tuple[bytes, bytes]
"""A plain hit's response: the whole of it, or (head, body) for a large body."""
PLAIN_VARY_FIELDS = frozenset({"accept", "accept-encoding"})
_UNKNOWN = object()


class PlainHits:
    def __init__(
        self,
        store: Store,
        metrics: EdgeMetrics,
        find: Callable[[str, EdgeRequest], Entry | None],
        *,
        name: str,
        via: str,
        stream_above: int,
    ) -> None:
        self.store = store
        self.name = name
        self.via = via
        self.stream_above = stream_above
        self._find = find
        self._tally = metrics.plain_hits
        # Bound once (the store keeps these objects for its lifetime): they are used on every hit.
        self._by_key = store.by_key
        self._entries = store.entries
        self._touch_memory = store.memory.touch
        self._keys: dict[str, str] = {}
        self._raw_keys: dict[bytes, str] = {}
        self._variants: dict[tuple[tuple[str, ...], str | None, str | None], object] = {}
        # The per-hit part of the head: RFC 9211 Cache-Status with the freshness left, and Age.
        status = f"Cache-Status: {name}; hit; ttl=%d\r\nAge: %d\r\n".encode()
        self._tail_keep_alive = status + b"\r\n"
        self._tail_close = status + b"Connection: close\r\n\r\n"

    # Request headers that need the general path: conditionals, ranges, credentials.
    _NOT_PLAIN = ("Range", "If-None-Match", "If-Modified-Since", "If-Range", "Authorization")

    def for_request(self, request: EdgeRequest, keep_alive: bool) -> PlainHit | None:
        """The complete response bytes for a fresh, unconditional GET/HEAD hit, or None for anything else.

        Designed for speed: one lookup, a pre-serialised head per stored object, pre-bound metric children,
        no response object. Every other case goes through ``CachingProxy.handle`` with the full semantics.
        """
        if request.method not in CACHEABLE_METHODS:
            return None
        headers = request.headers
        for name in self._NOT_PLAIN:
            if name in headers:
                return None
        entry = self._find(self.request_key(request), request)
        if entry is None:
            return None
        return self._plain_response(entry, request.method == "HEAD", keep_alive)

    def for_recognised(self, request: PlainRequest) -> PlainHit | None:
        """``for_request`` for a request recognised without a parser (``plain_request.py``): keep-alive, no
        conditionals, ranges or credentials by construction, and only Accept and Accept-Encoding known.

        A memory-tier object only: a disk read would block the loop for longer than parsing costs.
        """
        head_only, target, accept, accept_encoding = request
        ids = self._by_key.get(self._raw_keys.get(target) or self._key_of_raw(target))
        if not ids:
            return None
        for entry_id in ids:
            entry = self._entries[entry_id]
            if entry.vary:
                variant = self._plain_variant(entry.vary, accept, accept_encoding)
                if variant is None:
                    return None  # varies on a field the recogniser does not keep: the general path decides
                if variant != entry.variant:
                    continue
            elif entry.variant:
                continue
            if entry.body is None:
                return None  # a disk-tier object: the general path reads or streams it
            response = self._plain_response(entry, head_only, True)
            if response is not None:
                self._touch_memory(entry_id)  # a hit, for the eviction policy (Store.get for memory entries)
            return response
        return None

    def _plain_response(self, entry: Entry, head_only: bool, keep_alive: bool) -> PlainHit | None:
        started = time.monotonic()
        if entry.status != 200:
            return None
        body = entry.body
        if body is None and entry.size > min(self.stream_above, self.store.inline_read):
            return None  # a large disk object streams from its file, read off the loop (handle)
        age = fresh_age(entry, time.time())
        if age is None:
            return None  # stale or soft-purged: the general path decides (decision.decide)
        if body is None:
            try:
                body = self.store.read_body(entry)
            except CorruptBody:
                return None  # evicted: the general path refetches it
        head = entry.hit_head
        if head is None:
            head = entry.hit_head = self._hit_head(entry, len(body))
        tail = (self._tail_keep_alive if keep_alive else self._tail_close) % (entry.lifetime - age, age)
        tally = self._tally
        tally.hits += 1
        elapsed = time.monotonic() - started
        tally.latency_counts[bisect_left(tally.bounds, elapsed)] += 1  # its histogram bucket
        tally.latency_sum += elapsed
        if head_only:
            return head + tail
        tally.bytes += len(body)
        if len(body) >= VECTORED_BODY:
            return head + tail, body
        return b"".join((head, tail, body))

    def request_key(self, request: EdgeRequest) -> str:
        """The primary cache key of a request, memoised by its target: the same few thousand URLs come back
        all day, and normalising a query costs more than answering a hit. (The key is a function of the target
        alone, so the memo cannot disagree with ``primary_key``.)"""
        key = self._keys.get(request.target)
        if key is None:
            raw_path, _, raw_query = request.target.partition("?")
            key = primary_key(raw_path, raw_query)
            if len(self._keys) >= KEY_MEMO_SIZE:
                self._keys.clear()  # bounded: a crawler's one-hit URLs must not grow it without limit
            self._keys[request.target] = key
        return key

    def _key_of_raw(self, target: bytes) -> str:
        """The key of a recognised request's raw target: the same function of the same bytes as ``request_key``."""
        key = self._raw_keys.get(target)
        if key is None:
            path, _, query = target.decode("latin-1").partition("?")
            key = primary_key(path, query)
            if len(self._raw_keys) >= KEY_MEMO_SIZE:
                self._raw_keys.clear()
            self._raw_keys[target] = key
        return key

    def _plain_variant(self, vary: tuple[str, ...], accept: str | None, accept_encoding: str | None) -> str | None:
        memo_key = (vary, accept, accept_encoding)
        variant = self._variants.get(memo_key, _UNKNOWN)
        if variant is _UNKNOWN:
            if any(name not in PLAIN_VARY_FIELDS for name in vary):
                variant = None
            else:
                known = {"accept": accept, "accept-encoding": accept_encoding}
                variant = secondary_key(vary, {k: v for k, v in known.items() if v is not None})
            if len(self._variants) >= KEY_MEMO_SIZE:
                self._variants.clear()
            self._variants[memo_key] = variant
        return variant  # type: ignore[return-value]

    def _hit_head(self, entry: Entry, length: int) -> bytes:
        """Everything of a hit's head but Cache-Status and Age, in the general path's form (``response_head``).
        The stored Date stays (RFC 9110 §6.6.1); an entry stored without one is dated when it was received."""
        fields = [(n, v) for n, v in entry.headers if n.lower() not in RECOMPUTED and n.lower() != "accept-ranges"]
        if entry.header("Date") is None:
            fields.append(("Date", format_http_date(entry.response_time)))
        fields += [("Accept-Ranges", "bytes"), ("X-Cache", "HIT"), ("Via", self.via)]
        return status_line(200) + b"Content-Length: %d\r\n" % length + field_block(fields)
