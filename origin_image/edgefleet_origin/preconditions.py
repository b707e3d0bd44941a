"""Conditional requests (RFC 9110 §13): decide 412, 304 or "go ahead" from validators alone.

Evaluation order follows §13.2.2: If-Match, else If-Unmodified-Since; then If-None-Match, else
If-Modified-Since (GET/HEAD only); If-Range is decided separately, when a Range is present.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime


class Outcome(enum.Enum):
    PROCEED = "proceed"
    NOT_MODIFIED = "not-modified"  # 304
    PRECONDITION_FAILED = "precondition-failed"  # 412


def quote_etag(opaque: str) -> str:
    return f'"{opaque}"'


def evaluate(method: str, headers: Mapping[str, str], etag: str, last_modified: datetime) -> Outcome:
    """``etag`` is the quoted strong entity tag of the selected representation."""
    if_match = headers.get("If-Match")
    if if_match is not None:
        if not _matches(if_match, etag, strong=True):
            return Outcome.PRECONDITION_FAILED
    else:
        since = _http_date(headers.get("If-Unmodified-Since"))
        if since is not None and _seconds(last_modified) > _seconds(since):
            return Outcome.PRECONDITION_FAILED
    safe = method in {"GET", "HEAD"}
    if_none_match = headers.get("If-None-Match")
    if if_none_match is not None:
        if _matches(if_none_match, etag, strong=False):
            return Outcome.NOT_MODIFIED if safe else Outcome.PRECONDITION_FAILED
    elif safe:
        since = _http_date(headers.get("If-Modified-Since"))
        if since is not None and _seconds(last_modified) <= _seconds(since):
            return Outcome.NOT_MODIFIED
    return Outcome.PROCEED


def range_applies(headers: Mapping[str, str], etag: str, last_modified: datetime) -> bool:
    """If-Range (§13.1.5): honour Range only when the client's copy is still current."""
    if_range = headers.get("If-Range")
    if if_range is None:
        return True
    if_range = if_range.strip()
    if if_range.startswith(('"', "W/")):
        return if_range == etag  # strong comparison; a weak tag never matches
    date = _http_date(if_range)
    return date is not None and _seconds(date) == _seconds(last_modified)


def _matches(header: str, etag: str, *, strong: bool) -> bool:
    if header.strip() == "*":
        return True
    for candidate in (c.strip() for c in header.split(",")):
        if strong:
            if candidate == etag:
                return True
        elif candidate.removeprefix("W/") == etag.removeprefix("W/"):
            return True
    return False


def _http_date(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None  # §13.1.3: an invalid date makes the condition be ignored
    return parsed if parsed.tzinfo else None


def _seconds(moment: datetime) -> int:
    return int(moment.timestamp())
