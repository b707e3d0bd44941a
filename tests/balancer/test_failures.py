"""Edges failing under the balancer: killed, crashing mid-request; what is retried and what never is."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from edgefleet_balancer.server import Balancer

from edgefleet.embedded_redis import free_port
from tests.balancer.harness import Setup, eventually, haproxy_available, settings_for

STUB = Path(__file__).with_name("stub_edge_main.py")


class EdgeProcess:
    def __init__(self, name: str) -> None:
        self.name = name
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, str(STUB), self.name, str(self.port)])

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def edge_processes() -> Iterator[list[EdgeProcess]]:
    edges = [EdgeProcess(f"edge-{i}") for i in range(3)]
    for edge in edges:
        edge.start()
    yield edges
    for edge in edges:
        edge.stop()


async def test_sigkilled_edge_under_load_fails_no_get_and_is_readmitted_when_back(
    edge_processes: list[EdgeProcess],
) -> None:
    haproxy_available()
    balancer = Balancer(settings_for([]))
    await balancer.start()
    session = aiohttp.ClientSession()
    s = Setup(balancer, {}, session)
    try:
        assert await s.put_members([{"name": e.name, "url": e.url} for e in edge_processes]) == 200
        await eventually(s.all_up, "every edge up")
        victim = edge_processes[1]
        paths = [f"/assets/item-{i}.jpg" for i in range(60)]
        owned = [p for p in paths if (await s.get(p))[1] == victim.name]
        assert owned, "the victim owns some keys"

        results: list[tuple[int, str]] = []
        errors: list[str] = []
        killed = asyncio.Event()

        async def client(worker: int) -> None:
            for i in range(100):
                if worker == 0 and i == 30:
                    victim.kill()
                    killed.set()
                try:
                    results.append(await s.get(paths[(worker * 7 + i) % len(paths)]))
                except aiohttp.ClientError as exc:
                    errors.append(repr(exc))

        await asyncio.gather(*(client(w) for w in range(4)))
        failed = [r for r in results if r[0] != 200]
        print(f"{len(failed) + len(errors)} failed of {len(results) + len(errors)} GETs with {victim.name} killed")
        assert killed.is_set()
        assert len(results) >= 300
        assert errors == [] and failed == []

        async def victim_down() -> bool:
            return not (await s.view())[victim.name]["healthy"]

        await eventually(victim_down, "the balancer to see the killed edge down")
        assert {(await s.get(p))[1] for p in owned} & {victim.name} == set()

        victim.start()

        async def victim_up() -> bool:
            return bool((await s.view())[victim.name]["status"] == "UP")

        await eventually(victim_up, "the edge to be re-admitted")
        assert {(await s.get(p))[1] for p in owned} == {victim.name}, "it owns its keys again"
    finally:
        await session.close()
        await balancer.stop()


async def test_a_get_the_owner_drops_is_answered_by_the_next_edge(setup: Setup) -> None:
    path = "/assets/retry-me.jpg"
    _, owner = await setup.get(path)
    setup.edges[owner].drop = True
    status, edge = await setup.get(path)
    assert status == 200 and edge != owner
    assert ("GET", path) in setup.edges[owner].seen


async def test_a_post_the_owner_drops_is_never_sent_again(setup: Setup) -> None:
    path = "/api/orders"
    _, owner = await setup.get(path)
    for edge in setup.edges.values():
        edge.seen.clear()
    setup.edges[owner].drop = True
    # On a fresh connection HAProxy answers 502; on a reused keep-alive one it closes the connection
    # instead (the client's to decide about a retry). Either way the balancer itself never sends it twice.
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as fresh,
        fresh.post(setup.url + path, data=b'{"sku": 1}') as response,
    ):
        await response.read()
        assert response.status == 502
    posts = [(name, p) for name, edge in setup.edges.items() for method, p in edge.seen if method == "POST"]
    assert posts == [(owner, path)], "the POST reached its owner once and no other edge"


async def test_a_post_to_an_edge_that_is_gone_reaches_the_next_edge_once(setup: Setup) -> None:
    path = "/api/cart"
    _, owner = await setup.get(path)
    for edge in setup.edges.values():
        edge.seen.clear()
    await setup.edges[owner].stop()
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as fresh,
        fresh.post(setup.url + path, data=b"x") as response,
    ):
        await response.read()
        status = response.status
    posts = [name for name, edge in setup.edges.items() for method, _ in edge.seen if method == "POST"]
    # The refused connection carried nothing, so the one copy goes to the next edge; never two copies.
    assert (status, len(posts)) == (200, 1)
    assert posts != [owner]
