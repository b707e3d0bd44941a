"""Cache affinity through HAProxy over real HTTP: owners, spread, growth, headers, the target as sent."""

from __future__ import annotations

import asyncio
from collections import Counter

from tests.balancer.harness import Setup, eventually, running


async def owners(s: Setup, paths: list[str], concurrency: int = 1) -> dict[str, str]:
    """Which edge answered each path (from X-Edge), asking through the balancer.

    One request at a time: with several in flight, the bounded load (hash-balance-factor) may send a
    request past a momentarily busier owner, which is its job but not what these tests measure."""
    result: dict[str, str] = {}
    queue = list(paths)

    async def worker() -> None:
        while queue:
            path = queue.pop()
            status, edge = await s.get(path)
            assert status == 200
            result[path] = edge

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return result


async def test_a_key_always_lands_on_the_same_edge(setup: Setup) -> None:
    for i in range(20):
        path = f"/assets/p-{i}.jpg?w=320"
        answers = {await setup.get(path) for _ in range(3)}
        assert len(answers) == 1, answers
        ((status, owner),) = answers
        assert status == 200
        served = {name: sum(1 for _, p in edge.seen if p == path) for name, edge in setup.edges.items()}
        assert served == {name: 3 if name == owner else 0 for name in setup.edges}, "X-Edge names who served it"


async def test_keys_spread_evenly_and_a_fifth_edge_takes_about_a_fifth_of_them() -> None:
    async with running(5) as s:
        four = [{"name": e.name, "url": e.url} for e in list(s.edges.values())[:4]]
        assert await s.put_members(four) == 200
        paths = [f"/assets/products/sku-{i:06d}.jpg?w=320" for i in range(10_000)]
        before = await owners(s, paths)
        counts = Counter(before.values())
        mean = len(paths) / 4
        print(f"busiest of 4 edges holds {max(counts.values()) / mean:.3f}x the mean: {dict(counts)}")
        assert set(counts) == {"edge-0", "edge-1", "edge-2", "edge-3"}
        assert max(counts.values()) <= 1.25 * mean

        assert await s.put_members([*four, {"name": "edge-4", "url": s.edges["edge-4"].url}]) == 200
        await eventually_up(s, 5)
        sample = paths[:3000]
        after = await owners(s, sample)
        moved = [p for p in sample if after[p] != before[p]]
        fraction = len(moved) / len(sample)
        print(f"adding a fifth edge moved {fraction:.3f} of keys (ideal 0.200)")
        assert 0.12 < fraction < 0.28
        assert {after[p] for p in moved} == {"edge-4"}, "keys move only to the new edge"


async def eventually_up(s: Setup, count: int) -> None:
    async def ready() -> bool:
        view = await s.view()
        return len(view) == count and all(e["status"] == "UP" for e in view.values())

    await eventually(ready, f"{count} edges up")


async def test_target_is_forwarded_exactly_as_received(setup: Setup) -> None:
    raw = "/assets/a%3Fb%23c/%2e%2e/%2E%2E/x%2Fy.jpg?q=%2e%2e&w=%3F"
    reader, writer = await asyncio.open_connection("127.0.0.1", setup.balancer.data_port)
    writer.write(f"GET {raw} HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200")
    assert [path for edge in setup.edges.values() for _, path in edge.seen] == [raw]


async def test_x_edge_names_the_edge_unless_disabled() -> None:
    async with running(2, x_edge=False) as s:
        status, edge = await s.get("/assets/a.jpg")
        assert status == 200 and edge == ""
        assert sum(len(e.seen) for e in s.edges.values()) == 1


async def test_no_member_edges_gives_503_and_not_ready(setup: Setup) -> None:
    assert await setup.put_members([]) == 200
    assert (await setup.get("/assets/a.jpg"))[0] == 503
    async with setup.session.get(setup.admin + "/readyz", headers=setup.auth) as response:
        assert response.status == 503


async def test_membership_api_requires_the_admin_token(setup: Setup) -> None:
    body = [{"name": "evil", "url": "http://127.0.0.1:1"}]
    async with setup.session.put(setup.admin + "/members", json=body) as response:
        assert response.status == 401
    async with setup.session.put(setup.admin + "/members", json=body, headers={"Authorization": "Bearer x"}) as r:
        assert r.status == 403
    assert "evil" not in await setup.view()
    async with setup.session.get(setup.admin + "/healthz") as response:
        assert response.status == 200


async def test_membership_api_rejects_malformed_members_and_keeps_the_old_ones(setup: Setup) -> None:
    bad_lists = (
        [{"url": "http://x"}],
        [{"name": "a", "url": "file:///etc/passwd"}],
        {"name": "a"},
        [{"name": "a b", "url": "http://127.0.0.1:1"}],
        [{"name": "a", "url": "http://127.0.0.1:1"}, {"name": "a", "url": "http://127.0.0.1:2"}],
    )
    for bad in bad_lists:
        assert await setup.put_members(bad) == 400, bad  # type: ignore[arg-type]
    assert set(await setup.view()) == set(setup.edges)
