"""Warm events from the bus are fetched through HAProxy's warm path, so each lands on the edge that owns it,
carries the fleet's warm marker, and never pushes a shopper's request for that key off its owner."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import redis.asyncio as aioredis

from edgefleet.bus import PurgeBus, WarmMessage
from edgefleet.warm_marker import HEADER, warm_marker
from tests.balancer.harness import TOKEN, Setup, StubEdge, eventually, running

KEYS = [f"/assets/product-{i}.jpg?w={w}" for i in range(60) for w in (320, 640)]


@contextlib.asynccontextmanager
async def warm_bus(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)

    async def group_exists() -> bool:
        try:
            return bool(await client.xinfo_groups("edgefleet:shop:warm"))
        except aioredis.ResponseError:
            return False

    try:
        await eventually(group_exists, "the balancer's warm consumer group")
        yield client
    finally:
        await client.aclose()


async def publish_warm(client: aioredis.Redis, path: str) -> None:
    await PurgeBus(client, "shop").publish_warm(WarmMessage(paths=(path,), issuer="test"))


def asked_for(s: Setup, path: str) -> list[str]:
    return [name for name, edge in s.edges.items() if ("GET", path) in edge.seen]


async def test_a_warm_event_reaches_the_owner_edge_only_with_a_valid_marker(redis_url: str) -> None:
    async with running(3, redis=redis_url) as s, warm_bus(redis_url) as client:
        path = "/assets/new-arrival.jpg?w=640"
        await publish_warm(client, path)

        async def fetched() -> bool:
            return bool(asked_for(s, path))

        await eventually(fetched, "an edge to be asked for the warmed path")
        warmed_on = asked_for(s, path)
        marker = s.edges[warmed_on[0]].warm_markers[path]
        _, owner = await s.get(path)
        assert warmed_on == [owner]
        assert marker == warm_marker(TOKEN, path)


async def test_a_client_sent_warm_marker_never_reaches_an_edge(setup: Setup) -> None:
    path = "/assets/forged.jpg"
    async with setup.session.get(setup.url + path, headers={HEADER: warm_marker(TOKEN, path)}) as response:
        await response.read()
        edge = response.headers["X-Edge"]
    assert response.status == 200
    assert setup.edges[edge].warm_markers == {path: None}


async def test_a_warm_request_in_flight_does_not_push_the_next_get_of_its_key_off_the_owner(redis_url: str) -> None:
    async with running(3, redis=redis_url) as s, warm_bus(redis_url) as client:
        path = "/assets/just-uploaded.jpg"
        _, owner = await s.get(path)
        release = asyncio.Event()
        s.edges[owner].hold[path] = release  # the owner is slow to answer the warm request
        await publish_warm(client, path)

        async def warm_in_flight() -> bool:
            return path in s.edges[owner].held

        try:
            await eventually(warm_in_flight, "the warm request to be in flight on the owner")
            status, edge = await s.get(path)  # a shopper's GET meanwhile
        finally:
            release.set()
        assert (status, edge) == (200, owner), "the shopper's GET spilled to another edge"


async def test_the_warm_path_and_the_data_path_agree_on_every_owner_across_membership_changes() -> None:
    async with running(4) as s:
        balancer = s.balancer

        async def agree() -> None:
            for path in KEYS:
                assert (await balancer.warm(path))[1] == (await s.get(path))[1], path

        await agree()
        members = [{"name": e.name, "url": e.url} for e in s.edges.values()]
        assert await s.put_members(members[1:]) == 200  # an edge leaves ...
        assert {(await balancer.warm(path))[1] for path in KEYS} == {e["name"] for e in members[1:]}
        await agree()
        newcomer = StubEdge("edge-new", s.edges["edge-0"].port)  # ... and its address comes back as a new pod
        assert await s.put_members([*members[1:], {"name": newcomer.name, "url": newcomer.url}]) == 200
        await eventually(s.all_up, "every edge up")
        await agree()
        assert "edge-new" in {(await balancer.warm(path))[1] for path in KEYS}


async def test_a_warm_request_skips_an_edge_its_health_checks_took_out(setup: Setup) -> None:
    victim = "edge-1"
    owned = [path for path in KEYS if (await setup.balancer.warm(path))[1] == victim]
    assert owned
    await setup.edges[victim].stop()

    async def victim_down() -> bool:
        return not (await setup.view())[victim]["healthy"]

    await eventually(victim_down, "the health checks to take the stopped edge out")
    for path in owned:
        status, edge = await setup.balancer.warm(path)
        assert status == 200 and edge != victim
