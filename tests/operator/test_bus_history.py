"""The CdnCluster says when its purge bus lost its history: the pure condition, and the epoch on a real Redis."""

from __future__ import annotations

import datetime as dt

import redis.asyncio as aioredis
from edgefleet_operator.bus_history import CONDITION, SHOWN_FOR, history_condition, look

from edgefleet.bus import PurgeBus

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def test_a_lost_history_is_true_at_once_and_for_an_hour() -> None:
    lost = history_condition(True, [], NOW, 3)
    assert (lost.type, lost.status, lost.reason, lost.observed_generation) == (CONDITION, "True", "BusEpochChanged", 3)
    assert "spec.purgeBus.persistence" in lost.message
    assert history_condition(False, [lost], NOW + SHOWN_FOR / 2, 3).status == "True", "still shown to people"
    assert history_condition(False, [lost], NOW + SHOWN_FOR * 2, 3).status == "False"


def test_a_kept_history_is_false() -> None:
    kept = history_condition(False, [], NOW, 1)
    assert (kept.status, kept.reason) == ("False", "HistoryKept")


async def test_the_epoch_changes_exactly_when_redis_loses_its_data(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    bus = PurgeBus(client, "shop")
    try:
        first = await look(bus, None)
        assert first is not None and first[1] is False, "nothing known yet: nothing lost"
        epoch = first[0]
        assert await look(bus, epoch) == (epoch, False), "the same Redis, the same history"
        await client.flushall()  # Redis restarted without persistence
        after = await look(bus, epoch)
        assert after is not None and after[1] is True and after[0] != epoch
    finally:
        await client.aclose()


async def test_an_unreachable_bus_says_nothing_rather_than_guess() -> None:
    client = aioredis.Redis.from_url("redis://127.0.0.1:1", socket_timeout=1)
    try:
        assert await look(PurgeBus(client, "shop"), "some-epoch") is None
    finally:
        await client.aclose()
