"""Shared-cache storing and freshness: RFC 9111 arithmetic, with RFC 9213 CDN-Cache-Control and Surrogate-Control.

Pure functions over response header fields and times; no I/O. Times are Unix seconds (floats). Every field is
read as the RFC 9110 list of all its lines (``fields.py``): a second ``Cache-Control: private`` line binds.
"""

from __future__ import annotations

import calendar
import email.utils
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from http_sfv.dictionary import Dictionary as StructuredDictionary

from .fields import Headers, field_lines, list_members

# RFC 9110 §15.1: statuses that are "heuristically cacheable" by default. 206 is left out on purpose: this cache
# stores whole representations only (RFC 9111 §3.3 allows, but does not require, storing partial content).
HEURISTICALLY_CACHEABLE = frozenset({200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501})
# RFC 9111 §5.2.2.3 must-understand: the statuses whose caching requirements this cache implements.
UNDERSTOOD_STATUSES = HEURISTICALLY_CACHEABLE | {302, 303, 307, 400, 403, 500, 502, 503, 504}
# RFC 9111 §4.2.2: a heuristic lifetime of 10% of the time since Last-Modified is typical; capped.
HEURISTIC_FRACTION = 0.1
HEURISTIC_CAP_SECONDS = 24 * 3600.0
MAX_DELTA_SECONDS = 2**31
"""RFC 9111 §1.2.2: a delta-seconds too large to represent is taken as 2^31."""


@dataclass(frozen=True)
class Directives:
    """Parsed Cache-Control-style directives: names lower-cased; values unquoted (None if absent)."""

    values: Mapping[str, str | None] = field(default_factory=dict)

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def seconds(self, name: str) -> float | None:
        """A delta-seconds directive; invalid values count as absent (RFC 9111 §1.2.2)."""
        raw = self.values.get(name)
        if raw is None or not raw.isdigit():
            return None
        return float(min(int(raw), MAX_DELTA_SECONDS))


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def directives_of(members: list[str]) -> Directives:
    out: dict[str, str | None] = {}
    for member in members:
        name, sep, arg = member.partition("=")
        name = name.strip().lower()
        # RFC 9111 §4.2.1: when a directive repeats, the first occurrence wins (for delta-seconds).
        if name and name not in out:
            out[name] = _unquote(arg.strip()) if sep else None
    return Directives(out)


def cache_control(headers: Headers) -> Directives:
    """Every line of Cache-Control, as one list (RFC 9110 §5.3)."""
    return directives_of(list_members(headers, "Cache-Control"))


def _cdn_cache_control(headers: Headers) -> Directives | None:
    """RFC 9213 §2.1: CDN-Cache-Control is a structured-field Dictionary (RFC 8941). A value that does not parse
    as one is ignored whole; a directive whose value has the wrong type is ignored (kept in a form that no
    delta-seconds reading accepts)."""
    lines = field_lines(headers, "CDN-Cache-Control")
    if not lines:
        return None
    dictionary = StructuredDictionary()
    try:
        dictionary.parse(", ".join(lines).encode("latin-1", errors="strict"))
    except (ValueError, UnicodeEncodeError):
        return None
    out: dict[str, str | None] = {}
    for name, member in dictionary.items():
        value = getattr(member, "value", member)
        if value is True:
            out[name] = None
        elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            out[name] = str(value)
        else:
            out[name] = f"<{type(value).__name__}>"
    return Directives(out)


def cdn_directives(headers: Headers) -> Directives | None:
    """The directives targeted at this cache, if any: CDN-Cache-Control (RFC 9213) first, then
    Surrogate-Control (Edge Architecture 1.0) with a max-age. When present they replace Cache-Control for us."""
    targeted = _cdn_cache_control(headers)
    if targeted is not None:
        return targeted
    surrogate = directives_of(list_members(headers, "Surrogate-Control"))
    return surrogate if "max-age" in surrogate else None


# RFC 9110 §5.6.7: IMF-fixdate, and the two obsolete forms a recipient must accept. Anything else is invalid,
# which for Expires means "already expired" (RFC 9111 §5.3). Written by hand: email.utils accepts far more
# (two-digit years in IMF form, numeric zones, missing weekdays), and each leniency turns a broken date into a
# valid future one.
_MONTHS = {name: index for index, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}  # fmt: skip
_TIME = r"(\d\d):(\d\d):(\d\d)"
_IMF_FIXDATE = re.compile(rf"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d\d) ([A-Z][a-z]{{2}}) (\d{{4}}) {_TIME} GMT")
_RFC850 = re.compile(
    rf"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (\d\d)-([A-Z][a-z]{{2}})-(\d\d) {_TIME} GMT"
)
_ASCTIME = re.compile(rf"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ([A-Z][a-z]{{2}}) ([ \d]\d) {_TIME} (\d{{4}})")


def parse_http_date(value: str | None, *, now: float | None = None) -> float | None:
    """An HTTP-date as Unix seconds, or None when absent or invalid."""
    if not value:
        return None
    value = value.strip()
    if match := _IMF_FIXDATE.fullmatch(value):
        day, month, year, hour, minute, second = match.groups()
    elif match := _RFC850.fullmatch(value):
        day, month, short_year, hour, minute, second = match.groups()
        # RFC 9110 §5.6.7: a two-digit year more than 50 years in the future is in the past century.
        this_year = time_year(now)
        year_number = this_year - this_year % 100 + int(short_year)
        if year_number > this_year + 50:
            year_number -= 100
        year = str(year_number)
    elif match := _ASCTIME.fullmatch(value):
        month, day, hour, minute, second, year = match.groups()
    else:
        return None
    month_number = _MONTHS.get(month)
    if month_number is None:
        return None
    try:
        fields = (int(year), month_number, int(day), int(hour), int(minute), int(second))
        if not (1 <= fields[2] <= 31 and fields[3] < 24 and fields[4] < 60 and fields[5] < 61):
            return None
        return float(calendar.timegm((*fields, 0, 0, 0)))
    except (ValueError, OverflowError):
        return None


def time_year(now: float | None) -> int:
    return time.gmtime(now).tm_year


def format_http_date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, usegmt=True)


def single_date(headers: Headers, name: str, now: float | None = None) -> float | None:
    """A date field that must have exactly one line (two Expires lines are invalid, RFC 9110 §5.5)."""
    lines = field_lines(headers, name)
    if len(lines) != 1:
        return None
    return parse_http_date(lines[0], now=now)


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
    """must-revalidate, proxy-revalidate or no-cache: never reused stale, not even when the origin fails
    (RFC 9111 §4.2.4, §5.2.2.2, §5.2.2.4, §5.2.2.8)."""
    grace_allowed: bool = True
    """Whether the edge's own grace (stale on origin failure without the origin's say-so) may apply. s-maxage
    implies proxy-revalidate (§5.2.2.10): only the origin's explicit stale-* permission counts then."""


def response_policy(
    status: int,
    headers: Headers,
    *,
    now: float,
    request_has_authorization: bool = False,
    allow_set_cookie: bool = False,
) -> Policy:
    """RFC 9111 §3 (storing) and §4.2.1 (lifetime) for a shared cache."""
    general = cache_control(headers)
    targeted = cdn_directives(headers)
    cc = targeted if targeted is not None else general

    if "must-understand" in cc:
        # §5.2.2.3: a cache that understands the status may store it, whatever no-store says.
        if status not in UNDERSTOOD_STATUSES:
            return Policy(False, "must-understand", 0.0)
    elif "no-store" in cc:
        return Policy(False, "no-store", 0.0)
    # `private` in Cache-Control binds shared caches even when CDN-Cache-Control says otherwise. A qualified
    # private="field" is treated as unqualified, which §5.2.2.7 allows.
    if "private" in general or "private" in cc:
        return Policy(False, "private", 0.0)
    if status == 206 or status < 200:
        return Policy(False, "partial" if status == 206 else "status", 0.0)
    if request_has_authorization and not (
        "public" in general or "s-maxage" in general or "must-revalidate" in general or targeted is not None
    ):
        return Policy(False, "authorization", 0.0)
    if field_lines(headers, "Set-Cookie") and not allow_set_cookie:
        return Policy(False, "set-cookie", 0.0)
    if any(member == "*" for member in list_members(headers, "Vary")):
        return Policy(False, "vary-star", 0.0)

    date = single_date(headers, "Date", now) or now
    lifetime: float | None
    if targeted is not None:
        lifetime = targeted.seconds("max-age")
    else:
        lifetime = general.seconds("s-maxage")
        if lifetime is None:
            lifetime = general.seconds("max-age")
    if lifetime is None and field_lines(headers, "Expires"):
        expires = single_date(headers, "Expires", now)
        # An invalid Expires (e.g. "0", a two-digit year, two lines) means already expired (RFC 9111 §5.3).
        lifetime = max(0.0, expires - date) if expires is not None else 0.0
    explicit = lifetime is not None or "public" in general
    has_validator = bool(field_lines(headers, "ETag") or field_lines(headers, "Last-Modified"))
    if lifetime is None and "no-cache" in cc and has_validator:
        # RFC 9111 §5.2.2.4: storable, but every reuse must be revalidated first.
        lifetime = 0.0
    if lifetime is None:
        last_modified = single_date(headers, "Last-Modified", now)
        if status in HEURISTICALLY_CACHEABLE and last_modified is not None:
            lifetime = min(HEURISTIC_CAP_SECONDS, max(0.0, (date - last_modified) * HEURISTIC_FRACTION))
        elif "public" in general and status in HEURISTICALLY_CACHEABLE:
            lifetime = 0.0
        else:
            return Policy(False, "no-freshness", 0.0)
    elif not explicit and status not in HEURISTICALLY_CACHEABLE:
        return Policy(False, "status", 0.0)
    no_cache = "no-cache" in cc
    must_revalidate = no_cache or "must-revalidate" in cc or "proxy-revalidate" in cc
    s_maxage = targeted is None and "s-maxage" in general
    return Policy(
        storable=True,
        reason="ok",
        lifetime=0.0 if no_cache else lifetime,
        stale_while_revalidate=0.0 if must_revalidate else (cc.seconds("stale-while-revalidate") or 0.0),
        stale_if_error=0.0 if must_revalidate else (cc.seconds("stale-if-error") or 0.0),
        must_revalidate=must_revalidate,
        grace_allowed=not (must_revalidate or s_maxage),
    )


def age_value(headers: Headers) -> float:
    """The Age field (RFC 9111 §5.1): its first member when it is delta-seconds, else 0."""
    members = list_members(headers, "Age")
    if not members or not members[0].isdigit():
        return 0.0
    return float(min(int(members[0]), MAX_DELTA_SECONDS))


def initial_age(headers: Headers, request_time: float, response_time: float) -> float:
    """RFC 9111 §4.2.3 corrected initial age: the origin's Age plus the time the response spent in flight, or
    the apparent age from the origin's Date (clock skew only ever makes a response older, never younger)."""
    date = single_date(headers, "Date", response_time)
    apparent_age = max(0.0, response_time - date) if date is not None else 0.0
    response_delay = max(0.0, response_time - request_time)
    corrected_age_value = age_value(headers) + response_delay
    return max(apparent_age, corrected_age_value)


def current_age(initial: float, response_time: float, now: float) -> float:
    return initial + max(0.0, now - response_time)
