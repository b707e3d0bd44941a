"""Whether a fleet's purge bus lost its history (a Redis restarted without its data), said as a condition.

When the managed Redis comes back empty (no ``spec.purgeBus.persistence``, a rescheduled pod, a flushed database),
every edge that restarts afterwards finds its checkpoint ahead of the new stream and drops its whole cache. The bus
keeps an epoch that changes exactly then (``PurgeBus.history``); the CdnCluster keeps the epoch it last saw in
``status.purgeBusEpoch``, and ``PurgeBusHistoryLost`` says when it changed. The condition stays True for an hour
after the loss was seen, so ``kubectl get cdn -o yaml`` still shows it to whoever looks after an incident.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from edgefleet.api.cdncluster import Condition
from edgefleet.bus import BusError, PurgeBus

CONDITION = "PurgeBusHistoryLost"
SHOWN_FOR = dt.timedelta(hours=1)


def history_condition(
    lost: bool, previous: Sequence[Condition], now: dt.datetime, generation: int | None
) -> Condition:
    """Pure: the condition after one look at the bus (``lost``: the epoch differs from the stored one)."""
    if lost:
        return Condition(
            type=CONDITION, status="True", reason="BusEpochChanged", observed_generation=generation,
            message="The purge bus's Redis came back without its streams: edges that restart drop their caches "
                    "and purges issued before it are gone. Set spec.purgeBus.persistence to keep them.",
            last_transition_time=now.isoformat(),
        )  # fmt: skip
    earlier = next((c for c in previous if c.type == CONDITION), None)
    if earlier is not None and earlier.status == "True":
        seen = dt.datetime.fromisoformat(earlier.last_transition_time.replace("Z", "+00:00"))
        if now - seen < SHOWN_FOR:
            return earlier
    return Condition(type=CONDITION, status="False", reason="HistoryKept", observed_generation=generation,
                     message="The purge bus has kept its history.", last_transition_time=now.isoformat())  # fmt: skip


async def look(bus: PurgeBus, known_epoch: str | None) -> tuple[str, bool] | None:
    """(the bus's epoch, whether it differs from ``known_epoch``), or None when the bus cannot be asked now."""
    try:
        history = await bus.history(known_epoch)
    except BusError:
        return None
    return history.epoch, history.lost
