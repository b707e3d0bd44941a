"""Telling the fleet that objects changed: purge on replace/delete, warm on create (the purge bus).

A changed object is purged by its path and by its path surrogate key, which every variant of it carries
(``caching.path_surrogate_key``), so one purge removes the original and all its widths and formats.
"""

from __future__ import annotations

import enum
import logging
import time
import uuid
from typing import Protocol

from edgefleet.bus import BusError, PurgeBus, PurgeMessage, WarmMessage
from edgefleet_origin.caching import asset_path, path_surrogate_key

log = logging.getLogger(__name__)

ISSUER = "origin"


class Change(enum.Enum):
    CREATED = "created"  # a key that did not exist
    REPLACED = "replaced"  # new bytes under an existing key
    WRITTEN = "written"  # created or replaced, origin cannot tell (bucket notifications)
    DELETED = "deleted"


def purge_for(key: str) -> PurgeMessage:
    return PurgeMessage(
        purge_id=f"origin-{uuid.uuid4()}",
        paths=(asset_path(key),),
        tags=(path_surrogate_key(key),),
        soft=False,
        issuer=ISSUER,
        issued_at=time.time(),
    )


def warm_for(key: str) -> WarmMessage:
    return WarmMessage(paths=(asset_path(key),), issuer=ISSUER, issued_at=time.time())


def messages_for(change: Change, key: str) -> list[PurgeMessage | WarmMessage]:
    """What to publish for one change, in order. An object written behind the origin's back may have
    replaced an older version that edges still hold, so it is purged before it is warmed."""
    if change is Change.CREATED:
        return [warm_for(key)]
    if change is Change.WRITTEN:
        return [purge_for(key), warm_for(key)]
    return [purge_for(key)]


class ChangeNotifier(Protocol):
    async def notify(self, change: Change, key: str) -> bool:
        """Publish the change; False when it could not be published (already logged)."""
        ...

    async def close(self) -> None: ...


class NoNotifier:
    """No bus configured: nothing to tell (a single origin without edges, or local experiments)."""

    async def notify(self, change: Change, key: str) -> bool:
        return True

    async def close(self) -> None:
        return None


class BusNotifier:
    def __init__(self, bus: PurgeBus) -> None:
        self.bus = bus

    async def notify(self, change: Change, key: str) -> bool:
        for message in messages_for(change, key):
            try:
                if isinstance(message, PurgeMessage):
                    entry_id = await self.bus.publish_purge(message)
                    log.info("Published purge %s for %s (%s)", entry_id, key, change.value)
                else:
                    await self.bus.publish_warm(message)
                    log.info("Published warm event for %s", key)
            except BusError as exc:
                log.error("Failed to publish %s event for %s: %s", change.value, key, exc)
                return False
        return True

    async def close(self) -> None:
        await self.bus.client.aclose()
