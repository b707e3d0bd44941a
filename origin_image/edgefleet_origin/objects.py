"""What the origin knows about a stored object, independent of where it is stored.

Per-object metadata travels with the object: S3 user metadata (``x-amz-meta-cache-max-age``,
``x-amz-meta-browser-max-age``, ``x-amz-meta-surrogate-key``) or, on the filesystem, a sidecar JSON file.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from edgefleet.api.units import UnitError, parse_seconds
from edgefleet_origin.errors import BadRequest

# User tags share the Surrogate-Key header with the derived ``path:`` key; forbidding ':' in tags
# means a tag can never be mistaken for (or collide with) a derived key.
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MAX_TAGS = 32
MAX_TTL_SECONDS = 365 * 24 * 3600
GENERIC_CONTENT_TYPES = frozenset(
    {"", "application/octet-stream", "binary/octet-stream", "application/x-www-form-urlencoded"}
)

# Storage-neutral metadata names (S3 user-metadata names without the x-amz-meta- prefix).
META_CACHE_MAX_AGE = "cache-max-age"
META_BROWSER_MAX_AGE = "browser-max-age"
META_SURROGATE_KEY = "surrogate-key"


@dataclass(frozen=True)
class ObjectMeta:
    """Metadata an uploader controls. ``None`` TTLs mean "use the origin's defaults"."""

    content_type: str = "application/octet-stream"
    ttl: int | None = None
    browser_ttl: int | None = None
    tags: tuple[str, ...] = ()

    def user_metadata(self) -> dict[str, str]:
        """The metadata as name -> string, for S3 user metadata and the sidecar file."""
        out: dict[str, str] = {}
        if self.ttl is not None:
            out[META_CACHE_MAX_AGE] = str(self.ttl)
        if self.browser_ttl is not None:
            out[META_BROWSER_MAX_AGE] = str(self.browser_ttl)
        if self.tags:
            out[META_SURROGATE_KEY] = " ".join(self.tags)
        return out

    @classmethod
    def from_user_metadata(cls, key: str, content_type: str, metadata: Mapping[str, str]) -> ObjectMeta:
        """Read metadata written by any tool; values that do not parse are ignored, not fatal,
        because objects uploaded straight to the bucket may carry anything. A generic content type
        (what presigned or ``mc`` uploads often get) is replaced by a guess from the key."""
        lowered = {k.lower().removeprefix("x-amz-meta-"): v for k, v in metadata.items()}
        if content_type.split(";")[0].strip().lower() in GENERIC_CONTENT_TYPES:
            content_type = guess_content_type(key)
        return cls(
            content_type=content_type,
            ttl=_lenient_ttl(lowered.get(META_CACHE_MAX_AGE)),
            browser_ttl=_lenient_ttl(lowered.get(META_BROWSER_MAX_AGE)),
            tags=tuple(t for t in _split_tags(lowered.get(META_SURROGATE_KEY, "")) if _TAG.fullmatch(t)),
        )


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object. ``etag`` is the strong validator's opaque value, without quotes."""

    key: str
    size: int
    etag: str
    last_modified: datetime
    meta: ObjectMeta = field(default_factory=ObjectMeta)


def parse_ttl(text: str, what: str = "TTL") -> int:
    """Whole seconds from ``3600`` or a duration such as ``1h`` / ``90s``."""
    stripped = text.strip()
    try:
        seconds = float(stripped) if stripped.isdigit() else parse_seconds(stripped)
    except UnitError as exc:
        raise BadRequest(f"{what} {text!r} is not seconds or a duration such as 1h") from exc
    if seconds > MAX_TTL_SECONDS:
        raise BadRequest(f"{what} {text!r} is longer than one year")
    return int(seconds)


def parse_tags(text: str) -> tuple[str, ...]:
    """Surrogate-key tags separated by spaces or commas, each ``[A-Za-z0-9][A-Za-z0-9._-]*``."""
    tags = _split_tags(text)
    for tag in tags:
        if not _TAG.fullmatch(tag):
            raise BadRequest(f"tag {tag!r} may contain only A-Z a-z 0-9 . _ - (at most 128)")
    if len(tags) > MAX_TAGS:
        raise BadRequest(f"more than {MAX_TAGS} tags")
    return tuple(dict.fromkeys(tags))


def guess_content_type(key: str) -> str:
    guessed, _ = mimetypes.guess_type(key, strict=False)
    return guessed or "application/octet-stream"


def _split_tags(text: str) -> list[str]:
    return [t for t in re.split(r"[\s,]+", text.strip()) if t]


def _lenient_ttl(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return parse_ttl(text)
    except BadRequest:
        return None
