"""Cache keys and Vary normalisation for the edge.

The primary key is ``edgefleet.cache_key.cache_key`` of the target as received: the one definition the origin and
the balancer share, which normalises only what cannot change the origin's answer. Secondary keys come from the
response's Vary header, with Accept reduced to the image formats it accepts (the origin's own negotiation) and
Accept-Encoding to the best coding, so a thousand browser Accept strings make four variants, not a thousand.
"""

from __future__ import annotations

from edgefleet.cache_key import cache_key, image_format_class, normalise_component

from .fields import Headers, combined

accept_class = image_format_class
normalise_path = normalise_component


def primary_key(raw_path: str, raw_query: str) -> str:
    """The primary cache key of a request: its percent-encoded path and raw query (``EdgeRequest.target``)."""
    return cache_key(raw_path, raw_query)


def encoding_class(accept_encoding: str | None) -> str:
    if not accept_encoding:
        return "identity"
    lowered = accept_encoding.lower()
    for coding in ("br", "gzip"):
        if coding in lowered:
            return coding
    return "identity"


def secondary_key(fields: tuple[str, ...], request_headers: Headers) -> str:
    """The request's values for the response's Vary fields, normalised; "" when nothing varies. Every line of a
    repeated request field counts (RFC 9110 §5.3): ``Cookie: a`` plus ``Cookie: b`` is not ``Cookie: a``."""
    parts = []
    for name in fields:
        value = combined(request_headers, name)
        if name == "accept":
            parts.append(f"accept={accept_class(value)}")
        elif name == "accept-encoding":
            parts.append(f"accept-encoding={encoding_class(value)}")
        else:
            parts.append(f"{name}={(value or '').strip()}")
    return "&".join(parts)
