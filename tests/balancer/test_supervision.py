"""HAProxy runs as the agent's child: if it dies, the agent starts it again with the same membership."""

from __future__ import annotations

import os
import signal

from tests.balancer.harness import Setup, eventually


async def test_a_killed_haproxy_comes_back_with_every_edge(setup: Setup) -> None:
    _, owner = await setup.get("/assets/a.jpg")
    process = setup.balancer.haproxy.process
    assert process is not None
    os.kill(process.pid, signal.SIGKILL)

    async def back() -> bool:
        if not setup.balancer.haproxy.running() or setup.balancer.haproxy.process is process:
            return False
        try:
            return await setup.all_up() and len(await setup.view()) == len(setup.edges)
        except AssertionError:
            return False

    await eventually(back, "HAProxy to be started again with every edge")
    assert await setup.get("/assets/a.jpg") == (200, owner), "the same edge owns the key after the restart"
    async with setup.session.get(setup.admin + "/metrics", headers=setup.auth) as response:
        assert "edgefleet_balancer_haproxy_restarts_total 1.0" in await response.text()
