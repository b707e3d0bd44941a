"""The one place that decides whether a stored response may answer a request, and what the answer says.

Like h11's state tables, everything that decides reuse lives here: the hot path (``plain_hits.py``), the general
path (``proxy.py``) and the tests ask these functions, so they cannot disagree. Pure: a stored entry's facts, the
request's facts and ``now`` in; a decision out.

RFC 9111 §4: a stored response is reused when it matches the request (§4.1, Vary), is fresh (§4.2), or may be
served stale (§4.2.4: only where the origin allowed it, RFC 5861, or — the edge's *grace* — when the origin fails
and nothing forbade it); otherwise it is revalidated (§4.3).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from .cachekey import secondary_key
from .fields import Headers, list_members


class StoredFacts(Protocol):
    """What the decision needs of a stored response (``store.Entry`` has it)."""

    @property
    def initial_age(self) -> float: ...
    @property
    def response_time(self) -> float: ...
    @property
    def lifetime(self) -> float: ...
    @property
    def stale(self) -> bool: ...
    @property
    def stale_while_revalidate(self) -> float: ...
    @property
    def stale_if_error(self) -> float: ...
    @property
    def must_revalidate(self) -> bool: ...
    @property
    def grace_allowed(self) -> bool: ...


class Reuse(enum.Enum):
    FRESH = "fresh"
    """Serve it as it is: a HIT."""
    STALE_WHILE_REVALIDATE = "stale-while-revalidate"
    """Serve it stale now and refresh it in the background (RFC 5861 §3)."""
    REVALIDATE = "revalidate"
    """Ask the origin first (conditionally); serve it stale only if the origin fails and ``stale_on_error``."""


@dataclass(frozen=True)
class Decision:
    reuse: Reuse
    age: float
    """RFC 9111 §4.2.3 current age: what the ``Age`` field says."""
    ttl: float
    """Freshness left (negative once stale): RFC 9211's ``ttl`` parameter."""


def current_age(entry: StoredFacts, now: float) -> float:
    """RFC 9111 §4.2.3: the corrected initial age plus the time the response has been stored."""
    elapsed = now - entry.response_time
    return entry.initial_age + (elapsed if elapsed > 0.0 else 0.0)


def fresh_age(entry: StoredFacts, now: float) -> float | None:
    """The current age of a fresh entry, or None when it is stale or soft-purged: ``decide``'s FRESH row on its
    own, for the hot path, which answers nothing else (one call, no objects)."""
    if entry.stale:
        return None
    elapsed = now - entry.response_time
    age = entry.initial_age + (elapsed if elapsed > 0.0 else 0.0)
    return age if age < entry.lifetime else None


def decide(entry: StoredFacts, now: float) -> Decision:
    """Fresh, stale-while-revalidate, or revalidate (RFC 9111 §4.2, §4.2.4; RFC 5861)."""
    age = current_age(entry, now)
    ttl = entry.lifetime - age
    if entry.stale:  # soft-purged: every reuse waits for the origin
        return Decision(Reuse.REVALIDATE, age, ttl)
    if fresh_age(entry, now) is not None:
        return Decision(Reuse.FRESH, age, ttl)
    if not entry.must_revalidate and -ttl < entry.stale_while_revalidate:
        return Decision(Reuse.STALE_WHILE_REVALIDATE, age, ttl)
    return Decision(Reuse.REVALIDATE, age, ttl)


def stale_on_error(entry: StoredFacts, age: float, grace: float) -> bool:
    """Whether a stale entry may answer when the origin failed (unreachable, timed out, or 5xx).

    must-revalidate, proxy-revalidate and no-cache forbid it outright (RFC 9111 §4.2.4, §5.2.2.2); otherwise the
    origin's stale-if-error window (RFC 5861 §4) applies, and the edge's grace only where the response left the
    choice to the cache (s-maxage implies proxy-revalidate, §5.2.2.10, so it leaves only stale-if-error)."""
    if entry.must_revalidate:
        return False
    window = max(entry.stale_if_error, grace) if entry.grace_allowed else entry.stale_if_error
    return age < entry.lifetime + window


def vary_matches(vary: tuple[str, ...], variant: str, request_headers: Headers) -> bool:
    """RFC 9111 §4.1: the request's values of the stored response's Vary fields select the same variant."""
    return secondary_key(vary, request_headers) == variant


def vary_fields(headers: Headers) -> tuple[str, ...] | None:
    """The Vary fields of a response, lower-cased and sorted, from every Vary line; None for ``*`` anywhere
    (RFC 9111 §4.1: such a response matches no request)."""
    members = {member.lower() for member in list_members(headers, "Vary")}
    if "*" in members:
        return None
    return tuple(sorted(members))


# ---- what an answer says about itself: X-Cache, RFC 9211 Cache-Status, Age ------------------------------------


class Outcome(enum.Enum):
    """How a response was produced, as X-Cache words (the left column) and Cache-Status parameters."""

    HIT = "HIT"
    STALE = "STALE"
    """Served stale: while revalidating in the background, or because the origin failed."""
    REVALIDATED = "REVALIDATED"
    EXPIRED = "EXPIRED"
    """Stale, and the origin sent a new response."""
    MISS = "MISS"
    BYPASS = "BYPASS"


def cache_status(name: str, outcome: Outcome, *, ttl: float | None = None, detail: str = "") -> str:
    """The RFC 9211 Cache-Status member of this cache. ``detail`` adds forwarding parameters (fwd, fwd-status,
    stored, detail)."""
    parts = [name]
    if outcome in (Outcome.HIT, Outcome.STALE):
        parts.append("hit")
    if ttl is not None:
        parts.append(f"ttl={int(ttl)}")
    if detail:
        parts.append(detail)
    return "; ".join(parts)
