"""Warm events from the bus are fetched through HAProxy, so each lands on the edge that owns it."""

from __future__ import annotations

import redis.asyncio as aioredis

from edgefleet.bus import PurgeBus, WarmMessage
from tests.balancer.harness import eventually, running


async def test_a_warm_event_reaches_the_owner_edge_only(redis_url: str) -> None:
    async with running(3, redis=redis_url) as s:
        client = aioredis.Redis.from_url(redis_url)
        try:

            async def group_exists() -> bool:
                try:
                    return bool(await client.xinfo_groups("edgefleet:shop:warm"))
                except aioredis.ResponseError:
                    return False

            await eventually(group_exists, "the balancer's warm consumer group")
            path = "/assets/new-arrival.jpg?w=640"
            await PurgeBus(client, "shop").publish_warm(WarmMessage(paths=(path,), issuer="test"))

            async def fetched() -> bool:
                return any(("GET", path) in edge.seen for edge in s.edges.values())

            await eventually(fetched, "an edge to be asked for the warmed path")
            warmed_on = [name for name, edge in s.edges.items() if ("GET", path) in edge.seen]
            _, owner = await s.get(path)
            assert warmed_on == [owner]
        finally:
            await client.aclose()
