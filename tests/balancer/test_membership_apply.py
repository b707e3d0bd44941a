"""Membership applied to a real HAProxy when the runtime API fails halfway through a change."""

from __future__ import annotations

import pytest
from edgefleet_balancer.haproxy_config import BACKEND
from edgefleet_balancer.runtime_api import RuntimeApiError

from tests.balancer.harness import Setup


async def test_a_change_that_failed_halfway_is_set_right_by_the_next(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    balancer = setup.balancer
    members = [{"name": e.name, "url": e.url} for e in setup.edges.values()]
    real = balancer.api.change
    calls = 0

    async def fails_once(line: str) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeApiError(f"injected failure of {line!r}")
        await real(line)

    monkeypatch.setattr(balancer.api, "change", fails_once)
    assert await setup.put_members(members[:1]) == 503  # two edges leave; HAProxy fails on the way
    monkeypatch.setattr(balancer.api, "change", real)
    assert await setup.put_members(members[:1]) == 200  # the same membership, asked again

    [kept] = [slot for slot, member in balancer.slots.items() if member.name == members[0]["name"]]
    in_service = {s.slot for s in await balancer.api.server_stats(BACKEND) if s.status != "MAINT"}
    assert in_service == {f"slot{kept}"}
    assert {(await setup.get(f"/assets/k{i}.jpg"))[1] for i in range(30)} == {members[0]["name"]}
