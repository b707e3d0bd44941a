"""Request collapsing: N concurrent requests for one cold key, through a real edge over loopback HTTP, and how
many requests reached the origin (target: exactly 1). The origin answers slowly enough that every request
arrives while the first is still in flight, for a small object (memory tier) and a large streamed one.

    .venv/bin/python bench/edge_collapsing.py --clients 200
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

import aiohttp
from aiohttp import web
from edgefleet_edge.server import Edge, EdgeSettings

from edgefleet.embedded_redis import free_port

SIZES = {"10k": 10_240, "1m": 2**20, "32m": 32 * 2**20}
"""10k and 1m are held whole (memory tier); 32m is over the memory tier's largest object and streams."""


async def run(clients: int) -> dict[str, tuple[int, int, set[str]]]:
    counts: dict[str, int] = {}
    release = asyncio.Event()

    async def respond(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        counts[name] = counts.get(name, 0) + 1
        await release.wait()  # held until every client has asked
        return web.Response(body=b"x" * SIZES[name], headers={"Cache-Control": "max-age=300"})

    app = web.Application()
    app.router.add_get("/{name}", respond)
    runner = web.AppRunner(app)
    await runner.setup()
    origin_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", origin_port).start()
    results: dict[str, tuple[int, int, set[str]]] = {}
    with tempfile.TemporaryDirectory() as cache_dir:
        edge = Edge(EdgeSettings(
            listen=("127.0.0.1", 0), admin_listen=("127.0.0.1", 0), origin=f"http://127.0.0.1:{origin_port}",
            memory=64 * 2**20, disk=256 * 2**20, cache_dir=Path(cache_dir), name="bench", admin_token="t",
        ))  # fmt: skip
        await edge.start()
        connector = aiohttp.TCPConnector(limit=clients)
        async with aiohttp.ClientSession(connector=connector) as session:
            for name, size in SIZES.items():
                release.clear()

                async def one(name: str = name) -> tuple[int, str]:
                    async with session.get(f"http://127.0.0.1:{edge.data_port}/{name}") as response:
                        body = await response.read()
                        return len(body), response.headers.get("X-Cache", "")

                tasks = [asyncio.ensure_future(one()) for _ in range(clients)]
                deadline = asyncio.get_running_loop().time() + 30
                # Wait until the first request reached the origin and the rest had time to queue behind it.
                while counts.get(name, 0) == 0 and asyncio.get_running_loop().time() < deadline:
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.5)  # a bench, not a test: give the stragglers a moment to arrive
                release.set()
                answers = await asyncio.gather(*tasks)
                complete = sum(1 for length, _ in answers if length == size)
                results[name] = (counts.get(name, 0), complete, {word for _, word in answers})
        await edge.stop()
    await runner.cleanup()
    return results


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=200)
    args = parser.parse_args()
    results = asyncio.run(run(args.clients))
    print(f"{'object':<8}{'clients':>9}{'origin requests':>17}{'complete bodies':>17}  x-cache")
    for name, (origin_requests, complete, words) in results.items():
        print(f"{name:<8}{args.clients:>9}{origin_requests:>17}{complete:>17}  {', '.join(sorted(words))}")
    return 0 if all(origin == 1 for origin, _, _ in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
