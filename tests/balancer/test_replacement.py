"""An edge replaced under load, the way Kubernetes replaces a pod: no GET may fail (issue #14).

What a pod deletion looks like from the balancer: the old edge's process exits (its port refuses
connections) a moment *before* the EndpointSlice update that removes it arrives; then a new edge appears
and joins. Health checks are as slow as in a real fleet (every 2 s, three failures), so during that moment
only the data path's own reaction keeps requests off the dead edge.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import aiohttp
from edgefleet_balancer.haproxy_config import HAProxyLimits

from edgefleet.embedded_redis import free_port
from tests.balancer.harness import StubEdge, eventually, running

FLEET_CHECKS = {"check_interval": 2.0, "falls": 3, "rises": 1}


async def test_replacing_an_edge_under_load_fails_no_get() -> None:
    async with running(2, limits=HAProxyLimits(**FLEET_CHECKS)) as s:
        survivor, victim = sorted(s.edges)
        outcomes: collections.Counter[Any] = collections.Counter()
        served_by: collections.Counter[str] = collections.Counter()
        failures: list[str] = []
        done = asyncio.Event()

        async def client(worker: int) -> None:
            for n in range(4000):  # bounded; the steps below end it much sooner
                if done.is_set():
                    return
                path = f"/assets/item-{(worker * 13 + n) % 40}.jpg"
                try:
                    status, edge = await s.get(path)
                except aiohttp.ClientError as exc:
                    status, edge = -1, repr(exc)
                outcomes[status] += 1
                if status == 200:
                    served_by[edge] += 1
                else:
                    failures.append(f"{path}: {status} {edge}")

        def total() -> int:
            return sum(outcomes.values())

        async def after(count: int, what: str) -> None:
            target = total() + count

            async def reached() -> bool:
                return total() >= target or done.is_set()

            await eventually(reached, what, deadline=60)

        clients = [asyncio.create_task(client(w)) for w in range(4)]
        try:
            await after(100, "traffic through both edges")
            await s.edges[victim].stop()  # the pod's process exits ...
            await after(300, "traffic while the dead edge is still a member")
            # ... then its endpoint leaves, and the replacement's arrives when it is ready.
            newcomer = StubEdge("edge-new", free_port())
            await newcomer.start()
            s.edges["edge-new"] = newcomer
            members = [{"name": e.name, "url": e.url} for e in (s.edges[survivor], newcomer)]
            assert await s.put_members([members[0]]) == 200
            await after(50, "traffic on the survivor alone")
            assert await s.put_members(members) == 200

            async def newcomer_serves() -> bool:
                return served_by["edge-new"] >= 20

            await eventually(newcomer_serves, "the replacement to serve", deadline=60)
        finally:
            done.set()
            await asyncio.gather(*clients)
        print(f"{len(failures)} failed of {total()} GETs: {dict(outcomes)}, served by {dict(served_by)}")
        assert failures == [], failures[:5]
