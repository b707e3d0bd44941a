"""What makes two requests the same object: the one definition the edge, the balancer and the origin share.

A shared cache may give one stored answer to two requests only when the origin would have answered both the same
way. So the key normalises only what RFC 3986 §6.2.2 says never changes a URI's meaning — percent-encoded
unreserved characters are decoded, the hex digits of every other escape are upper-cased — and the few things the
edgefleet origin is known to ignore: tracking parameters (``utm_*``, ``gclid``, …), empty ``&&`` pieces, and the
order of *different* query parameters (it reads each by name). It never decodes ``%2F``, ``%3B``, ``%3F`` or an
invalid UTF-8 escape, never reorders repeated parameters, and keeps ``?a=`` apart from ``?a``.

Image formats are negotiated from ``Accept`` by ``accepted_image_types`` here, which the origin uses to choose a
format and the edge uses to put requests in the same Vary class: they cannot disagree about what a client accepts.
"""

from __future__ import annotations

import re

UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
TRACKING_PREFIXES = ("utm_", "fbclid", "gclid", "msclkid", "mc_cid", "mc_eid", "_ga")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")


def _normalise_escape(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in UNRESERVED else "%" + match.group(1).upper()


def normalise_component(text: str) -> str:
    """RFC 3986 §6.2.2.1-2: unreserved characters decoded, every other escape kept with upper-case hex."""
    return _ESCAPE.sub(_normalise_escape, text) if "%" in text else text


def _is_tracking(parameter: str) -> bool:
    name = normalise_component(parameter.partition("=")[0]).lower()
    return name.startswith(TRACKING_PREFIXES)


def normalise_query(query: str) -> str:
    """Tracking parameters and empty pieces dropped; parameters ordered by name, repeated ones in their order."""
    if not query:
        return ""
    kept = [normalise_component(piece) for piece in query.split("&") if piece and not _is_tracking(piece)]
    kept.sort(key=lambda piece: piece.partition("=")[0])  # stable: ?a=1&a=2 and ?a=2&a=1 stay apart
    return "&".join(kept)


def cache_key(raw_path: str, raw_query: str) -> str:
    """The primary cache key of a request target as received (percent-encoded path, raw query)."""
    query = normalise_query(raw_query)
    return normalise_component(raw_path) + ("?" + query if query else "")


def split_target(target: str) -> tuple[str, str]:
    path, _, query = target.partition("?")
    return path, query


# ---- image format negotiation (RFC 9110 §12.5.1) ---------------------------------------------------------------

_QVALUE = re.compile(r"(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)")
"""RFC 9110 §12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )."""
NEGOTIATED_TYPES = ("image/avif", "image/webp")


def accepted_image_types(accept: str | None) -> frozenset[str]:
    """Media types named explicitly in Accept with a weight above zero.

    Wildcards do not count (``*/*`` does not promise AVIF support; browsers that decode AVIF or WebP say so). A
    member whose weight is not a valid qvalue (``q=00.5``, ``q=2``, ``q=abc``) is ignored, as is anything after an
    invalid one. A type listed more than once takes its highest weight.
    """
    if not accept:
        return frozenset()
    weights: dict[str, float] = {}
    for member in accept.split(","):
        media, *params = (part.strip() for part in member.split(";"))
        if not media or "*" in media:
            continue
        weight: float | None = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                value = value.strip()
                weight = float(value) if _QVALUE.fullmatch(value) else None
        if weight is None:
            continue
        media = media.lower()
        weights[media] = max(weight, weights.get(media, 0.0))
    return frozenset(media for media, weight in weights.items() if weight > 0)


def image_format_class(accept: str | None) -> str:
    """The Vary class of a request's Accept: which of the negotiated formats it accepts (``avif+webp``, ``avif``,
    ``webp`` or ``other``). Every pair of Accept values the origin could answer differently — whatever formats it
    has enabled, in whatever order — falls in different classes."""
    accepted = accepted_image_types(accept)
    named = [media.removeprefix("image/") for media in NEGOTIATED_TYPES if media in accepted]
    return "+".join(named) if named else "other"
