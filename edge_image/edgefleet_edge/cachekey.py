"""Cache keys and Vary normalisation.

The primary key is the path plus a normalised query (parameters sorted, empty and tracking parameters
dropped): ``?w=320&utm_source=x`` and ``?w=320`` are one object. The balancer hashes the same string,
so a key always lands on the edge that caches it. Secondary keys come from the response's Vary
header, with Accept reduced to the image format class and Accept-Encoding to the best coding, so a
thousand browser Accept strings make three variants, not a thousand.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, unquote, urlencode

from .fields import Headers, combined

TRACKING_PREFIXES = ("utm_", "fbclid", "gclid", "msclkid", "mc_cid", "mc_eid", "_ga")


def normalise_query(query: str) -> str:
    pairs = [
        (k, v)
        for k, v in parse_qsl(query, keep_blank_values=True)
        if v != "" and not k.lower().startswith(TRACKING_PREFIXES)
    ]
    pairs.sort()
    return urlencode(pairs, quote_via=quote)


def normalise_path(path: str) -> str:
    """Decode and re-encode so ``/a%2Db`` and ``/a-b`` are one key; never resolves ``..`` (the origin rejects it)."""
    return quote(unquote(path), safe="/:@!$&'()*+,;=-._~")


def primary_key(path: str, query: str) -> str:
    normalised = normalise_query(query)
    return normalise_path(path) + ("?" + normalised if normalised else "")


def accept_class(accept: str | None) -> str:
    """avif, webp or other: what the origin's format negotiation can tell apart."""
    if not accept:
        return "other"
    lowered = accept.lower()
    for media, name in (("image/avif", "avif"), ("image/webp", "webp")):
        index = lowered.find(media)
        if index >= 0:
            rest = lowered[index + len(media) :].split(",", 1)[0]
            if "q=0" in rest.replace(" ", "") and "q=0." not in rest.replace(" ", ""):
                continue  # explicitly refused (q=0)
            return name
    return "other"


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
