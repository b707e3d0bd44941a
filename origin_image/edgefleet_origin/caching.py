"""What the origin tells caches about an object: freshness headers and surrogate keys.

Surrogate-Key scheme (the edge indexes it; the operator and this origin purge by it):
``Surrogate-Key: path:/assets/<key> <tag> <tag> ...``. The first key is derived from the object's URL
path and is the same on every variant of it (``?w=``, ``?format=``, any Accept), so purging
``path:/assets/<key>`` removes all of them. The rest are the object's own tags (``sku-123 cat-shoes``);
tags cannot contain ':' so they never collide with derived keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from edgefleet_origin.objects import ObjectInfo

ASSETS_PREFIX = "/assets/"


def asset_path(key: str) -> str:
    """The URL path an object is served at."""
    return ASSETS_PREFIX + key


def path_surrogate_key(key: str) -> str:
    """The surrogate key shared by an object and all of its variants."""
    return "path:" + asset_path(key)


def surrogate_keys(info: ObjectInfo) -> tuple[str, ...]:
    return (path_surrogate_key(info.key), *info.meta.tags)


@dataclass(frozen=True)
class CachePolicy:
    """Defaults for objects without their own TTLs.

    ``ttl`` is for shared caches (our edges, which can be purged); ``browser_ttl`` is for private caches,
    which cannot be purged and so get at most the shared TTL.
    """

    ttl: int
    browser_ttl: int

    def headers(self, info: ObjectInfo) -> dict[str, str]:
        ttl = info.meta.ttl if info.meta.ttl is not None else self.ttl
        browser = info.meta.browser_ttl if info.meta.browser_ttl is not None else self.browser_ttl
        browser = min(browser, ttl)
        return {
            "Cache-Control": f"public, max-age={browser}",
            # RFC 9213: targeted at CDNs, which prefer it over Cache-Control.
            "CDN-Cache-Control": f"max-age={ttl}",
            "Surrogate-Key": " ".join(surrogate_keys(info)),
        }


def http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0), usegmt=True)
