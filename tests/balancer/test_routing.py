"""The balancer over real HTTP on loopback, in front of stub edges that answer with their own name."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from edgefleet_balancer.ring import owners
from edgefleet_balancer.server import Balancer, BalancerSettings

from edgefleet.bus import PurgeBus, WarmMessage
from edgefleet.embedded_redis import free_port

TOKEN = "test-admin-token"
DEADLINE = 15.0


async def eventually(probe: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not probe():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class StubEdge:
    name: str
    port: int
    seen: list[tuple[str, str]] = field(default_factory=list)
    bodies: list[int] = field(default_factory=list)
    hold: asyncio.Event | None = None
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        async def handle(request: web.Request) -> web.StreamResponse:
            if request.path == "/healthz":
                return web.Response(text="ok")
            self.seen.append((request.method, request.path_qs))
            self.bodies.append(len(await request.read()))
            if self.hold is not None:
                await self.hold.wait()
            return web.Response(text=f"served by {self.name}", headers={"X-Cache": "HIT"})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@dataclass
class Setup:
    balancer: Balancer
    edges: dict[str, StubEdge]
    session: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.balancer.data_port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.balancer.admin_port}"

    async def get(self, path: str, method: str = "GET") -> tuple[int, str]:
        async with self.session.request(method, self.url + path) as response:
            await response.read()
            return response.status, response.headers.get("X-Edge", "")


async def make_setup(redis_url: str | None = None, load_factor: float = 1.25) -> Setup:
    edges = {f"edge-{i}": StubEdge(f"edge-{i}", free_port()) for i in range(3)}
    for edge in edges.values():
        await edge.start()
    balancer = Balancer(
        BalancerSettings(
            listen=("127.0.0.1", 0), admin_listen=("127.0.0.1", 0), admin_token=TOKEN,
            edges=tuple((e.name, e.url, None) for e in edges.values()), load_factor=load_factor,
            redis=redis_url, cluster="shop", name="b-1",
        )
    )  # fmt: skip
    await balancer.start()
    return Setup(balancer, edges, aiohttp.ClientSession())


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    s = await make_setup()
    yield s
    await s.session.close()
    await s.balancer.stop()
    for edge in s.edges.values():
        await edge.stop()


async def test_each_key_is_served_by_its_owner_edge(setup: Setup) -> None:
    members = list(setup.edges)
    for i in range(30):
        path = f"/assets/p-{i}.jpg?w=320"
        statuses = {await setup.get(path) for _ in range(3)}
        assert statuses == {(200, owners(path, members)[0])}


async def test_query_normalisation_keeps_tracking_parameters_out_of_the_key(setup: Setup) -> None:
    plain = await setup.get("/assets/x.jpg?w=320&format=webp")
    tracked = await setup.get("/assets/x.jpg?format=webp&utm_source=mail&w=320")
    assert plain == tracked


async def test_killed_edge_is_retried_ejected_and_readmitted(setup: Setup) -> None:
    members = list(setup.edges)
    victim = setup.edges["edge-1"]
    paths = [f"/assets/item-{i}.jpg" for i in range(200)]
    owned = [p for p in paths if owners(p, members)[0] == victim.name]
    assert owned
    await victim.stop()
    results = [await setup.get(path) for path in owned]
    errors = [r for r in results if r[0] != 200]
    print(f"{len(errors)} errors over {len(owned)} requests for keys owned by the killed edge")
    assert errors == [], "GETs are retried once on the next owner"
    assert all(edge != victim.name for _, edge in results)
    await eventually(lambda: not setup.balancer.membership.members[victim.name].healthy, "ejection")
    await victim.start()
    await eventually(lambda: setup.balancer.membership.members[victim.name].healthy, "re-admission")
    assert (await setup.get(owned[0]))[1] == victim.name


async def test_unsafe_methods_are_never_retried(setup: Setup) -> None:
    members = list(setup.edges)
    victim = setup.edges["edge-2"]
    path = next(f"/api/orders/{i}" for i in range(1000) if owners(f"/api/orders/{i}", members)[0] == victim.name)
    await victim.stop()
    status, _ = await setup.get(path, method="POST")
    assert status == 502
    assert not any(method == "POST" for edge in setup.edges.values() for method, _ in edge.seen)


async def test_request_bodies_reach_the_owner_edge_intact(setup: Setup) -> None:
    path = "/api/cart/items"
    owner = owners(path, list(setup.edges))[0]
    async with setup.session.post(setup.url + path, data=b"x" * 1_000_000) as response:
        assert response.status == 200 and response.headers["X-Edge"] == owner
    assert setup.edges[owner].bodies == [1_000_000]


async def test_hot_key_beyond_the_bound_spills_to_the_second_owner(setup: Setup) -> None:
    members = list(setup.edges)
    path = "/assets/flash-sale/hero.jpg"
    first, second, third = owners(path, members)[:3]
    setup.edges[first].hold = asyncio.Event()
    pending = [asyncio.create_task(setup.get(path)) for _ in range(12)]
    await eventually(lambda: len(setup.edges[first].seen) >= 1, "the owner to receive requests")
    await eventually(lambda: sum(1 for t in pending if t.done()) >= 1, "spilled requests to finish")
    setup.edges[first].hold.set()
    served = Counter(edge for _, edge in await asyncio.gather(*pending))
    assert served[first] >= 1
    assert served[second] >= 1, f"nothing spilled to the second owner: {served}"
    assert served[second] >= served[third], f"spill follows rendezvous order, second owner first: {served}"


async def test_membership_api_requires_the_admin_token(setup: Setup) -> None:
    body = [{"name": "evil", "url": "http://127.0.0.1:1"}]
    async with setup.session.put(setup.admin + "/members", json=body) as response:
        assert response.status == 401
    async with setup.session.put(setup.admin + "/members", json=body, headers={"Authorization": "Bearer x"}) as r:
        assert r.status == 403
    assert "evil" not in setup.balancer.membership.members
    async with setup.session.get(setup.admin + "/healthz") as response:
        assert response.status == 200


async def test_membership_api_rejects_malformed_members(setup: Setup) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for bad in ([{"url": "http://x"}], [{"name": "a", "url": "file:///etc/passwd"}], {"name": "a"}):
        async with setup.session.put(setup.admin + "/members", json=bad, headers=headers) as response:
            assert response.status == 400
    assert set(setup.balancer.membership.members) == set(setup.edges)


async def test_no_healthy_edge_gives_503_and_not_ready(setup: Setup) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with setup.session.put(setup.admin + "/members", json=[], headers=headers) as response:
        assert response.status == 200
    assert (await setup.get("/assets/a.jpg"))[0] == 503
    async with setup.session.get(setup.admin + "/readyz", headers=headers) as response:
        assert response.status == 503


async def test_warm_event_is_fetched_through_the_owner_edge(redis_url: str) -> None:
    s = await make_setup(redis_url=redis_url)
    client = aioredis.Redis.from_url(redis_url)
    try:
        path = "/assets/new-arrival.jpg"
        owner = owners(path, list(s.edges))[0]
        await eventually(lambda: bool(s.balancer._tasks), "the warm consumer")
        consumer_ready = False

        async def group_exists() -> bool:
            groups = await client.xinfo_groups("edgefleet:shop:warm")
            return bool(groups)

        deadline = time.monotonic() + DEADLINE
        while not consumer_ready and time.monotonic() < deadline:
            try:
                consumer_ready = await group_exists()
            except aioredis.ResponseError:
                await asyncio.sleep(0.02)
        assert consumer_ready
        await PurgeBus(client, "shop").publish_warm(WarmMessage(paths=(path,), issuer="test"))
        await eventually(lambda: ("GET", path) in s.edges[owner].seen, "the owner edge to be asked for it")
        assert all(("GET", path) not in e.seen for n, e in s.edges.items() if n != owner)
    finally:
        await client.aclose()
        await s.session.close()
        await s.balancer.stop()
        for edge in s.edges.values():
            await edge.stop()
