"""Shared-cache freshness: RFC 9111 arithmetic, with RFC 9213 CDN-Cache-Control and Surrogate-Control.

Pure functions over header values and times; no I/O. Times are Unix seconds (floats).
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from dataclasses import dataclass, field

# RFC 9110 §15.1: statuses that are "heuristically cacheable" by default.
HEURISTICALLY_CACHEABLE = frozenset({200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501})
# RFC 9111 §4.2.2: a heuristic lifetime of 10% of the time since Last-Modified is typical; capped.
HEURISTIC_FRACTION = 0.1
HEURISTIC_CAP_SECONDS = 24 * 3600.0


@dataclass(frozen=True)
class Directives:
    """Parsed Cache-Control-style directives: names lower-cased; values unquoted (None if absent)."""

    values: Mapping[str, str | None] = field(default_factory=dict)

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def seconds(self, name: str) -> float | None:
        """A delta-seconds directive; invalid values count as absent (RFC 9111 §1.2.2)."""
        raw = self.values.get(name)
        if raw is None or not raw.strip().isdigit():
            return None
        return float(int(raw.strip()))


def parse_directives(value: str | None) -> Directives:
    if not value:
        return Directives()
    out: dict[str, str | None] = {}
    for part in value.split(","):
        name, sep, arg = part.strip().partition("=")
        name = name.strip().lower()
        if not name:
            continue
        # RFC 9111 §4.2.1: when a directive repeats, the first occurrence wins (for delta-seconds).
        if name not in out:
            out[name] = arg.strip().strip('"') if sep else None
    return Directives(out)


def parse_http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    return parsed.timestamp()


def format_http_date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, usegmt=True)


@dataclass(frozen=True)
class Policy:
    """What a response says about storing and reusing it in this (shared, CDN) cache."""

    storable: bool
    reason: str
    lifetime: float
    """Freshness lifetime in seconds (0 means stale at once: always revalidate)."""
    stale_while_revalidate: float = 0.0
    stale_if_error: float = 0.0
    must_revalidate: bool = False
    no_cache: bool = False


def cdn_directives(headers: Mapping[str, str]) -> Directives | None:
    """The directives targeted at this cache, if any: CDN-Cache-Control (RFC 9213) first, then
    Surrogate-Control (Edge Architecture 1.0). When present they replace Cache-Control for us."""
    for name in ("CDN-Cache-Control", "Surrogate-Control"):
        value = headers.get(name)
        if value is not None:
            directives = parse_directives(value)
            if name == "Surrogate-Control" and "max-age" in directives:
                return directives
            if name == "CDN-Cache-Control":
                return directives
    return None


def response_policy(
    status: int,
    headers: Mapping[str, str],
    *,
    now: float,
    request_has_authorization: bool = False,
    allow_set_cookie: bool = False,
) -> Policy:
    """RFC 9111 §3 (storing) and §4.2.1 (lifetime) for a shared cache."""
    general = parse_directives(headers.get("Cache-Control"))
    targeted = cdn_directives(headers)
    cc = targeted if targeted is not None else general

    if "no-store" in cc:
        return Policy(False, "no-store", 0.0)
    # `private` in Cache-Control binds shared caches even when CDN-Cache-Control says otherwise.
    if "private" in general or "private" in cc:
        return Policy(False, "private", 0.0)
    if request_has_authorization and not (
        "public" in general or "s-maxage" in general or "must-revalidate" in general or targeted is not None
    ):
        return Policy(False, "authorization", 0.0)
    if "Set-Cookie" in headers and not allow_set_cookie:
        return Policy(False, "set-cookie", 0.0)
    if headers.get("Vary", "").strip() == "*":
        return Policy(False, "vary-star", 0.0)

    lifetime: float | None
    if targeted is not None:
        lifetime = targeted.seconds("max-age")
    else:
        lifetime = general.seconds("s-maxage")
        if lifetime is None:
            lifetime = general.seconds("max-age")
    if lifetime is None and "Expires" in headers:
        expires = parse_http_date(headers.get("Expires"))
        date = parse_http_date(headers.get("Date")) or now
        # An invalid Expires (e.g. "0") means already expired (RFC 9111 §5.3).
        lifetime = max(0.0, expires - date) if expires is not None else 0.0
    explicit = lifetime is not None or "public" in general
    has_validator = "ETag" in headers or "Last-Modified" in headers
    if lifetime is None and "no-cache" in cc and has_validator:
        # RFC 9111 §5.2.2.4: storable, but every reuse must be revalidated first.
        lifetime = 0.0
    if lifetime is None:
        last_modified = parse_http_date(headers.get("Last-Modified"))
        if status in HEURISTICALLY_CACHEABLE and last_modified is not None:
            date = parse_http_date(headers.get("Date")) or now
            lifetime = min(HEURISTIC_CAP_SECONDS, max(0.0, (date - last_modified) * HEURISTIC_FRACTION))
        elif "public" in general and status in HEURISTICALLY_CACHEABLE:
            lifetime = 0.0
        else:
            return Policy(False, "no-freshness", 0.0)
    elif not explicit and status not in HEURISTICALLY_CACHEABLE:
        return Policy(False, "status", 0.0)
    no_cache = "no-cache" in cc
    return Policy(
        storable=True,
        reason="ok",
        lifetime=0.0 if no_cache else lifetime,
        stale_while_revalidate=cc.seconds("stale-while-revalidate") or 0.0,
        stale_if_error=cc.seconds("stale-if-error") or 0.0,
        must_revalidate="must-revalidate" in cc or "proxy-revalidate" in cc or "s-maxage" in general,
        no_cache=no_cache,
    )


def initial_age(headers: Mapping[str, str], request_time: float, response_time: float) -> float:
    """RFC 9111 §4.2.3 corrected initial age."""
    age_value = 0.0
    raw = headers.get("Age", "").strip()
    if raw.isdigit():
        age_value = float(raw)
    date = parse_http_date(headers.get("Date")) or response_time
    apparent_age = max(0.0, response_time - date)
    response_delay = response_time - request_time
    corrected_age_value = age_value + response_delay
    return max(apparent_age, corrected_age_value)


def current_age(initial: float, response_time: float, now: float) -> float:
    return initial + max(0.0, now - response_time)
