"""Everything a request handler needs, built once per server and passed down (no globals)."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from edgefleet_origin.caching import CachePolicy
from edgefleet_origin.change_events import ChangeNotifier
from edgefleet_origin.metrics import OriginMetrics
from edgefleet_origin.recent_writes import RecentWrites
from edgefleet_origin.settings import OriginSettings
from edgefleet_origin.storage import Storage
from edgefleet_origin.variant_cache import VariantCache


@dataclass(frozen=True)
class OriginContext:
    settings: OriginSettings
    storage: Storage
    variant_cache: VariantCache
    notifier: ChangeNotifier
    metrics: OriginMetrics
    recent_writes: RecentWrites = field(default_factory=RecentWrites)

    @property
    def cache_policy(self) -> CachePolicy:
        return CachePolicy(self.settings.default_ttl, self.settings.browser_ttl)


CONTEXT: web.AppKey[OriginContext] = web.AppKey("origin_context", OriginContext)


def context_of(request: web.Request) -> OriginContext:
    return request.app[CONTEXT]
