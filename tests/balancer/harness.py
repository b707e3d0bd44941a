"""The balancer (its agent and a real HAProxy) on loopback, in front of stub edges that answer with their name."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from edgefleet_balancer.haproxy_config import HAProxyLimits
from edgefleet_balancer.server import Balancer, BalancerSettings

from edgefleet.embedded_redis import free_port
from edgefleet.warm_marker import HEADER as WARM_HEADER
from tests.conftest import require

TOKEN = "test-admin-token"
DEADLINE = 20.0
BIG_CHUNK = bytes(range(256)) * 256  # 64 KiB of a known pattern


async def eventually(probe: Callable[[], Awaitable[bool]], what: str, deadline: float = DEADLINE) -> None:
    until = time.monotonic() + deadline
    while not await probe():
        if time.monotonic() > until:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def pattern_digest(size: int) -> str:
    """sha256 of ``size`` bytes of BIG_CHUNK repeated: what a stub edge sends for /big/<size>."""
    digest = hashlib.sha256()
    whole, rest = divmod(size, len(BIG_CHUNK))
    for _ in range(whole):
        digest.update(BIG_CHUNK)
    digest.update(BIG_CHUNK[:rest])
    return digest.hexdigest()


@dataclass
class StubEdge:
    """An edge stand-in: answers with its own name, records what it saw, serves big bodies on /big/<bytes>."""

    name: str
    port: int
    seen: list[tuple[str, str]] = field(default_factory=list)
    bodies: dict[str, str] = field(default_factory=dict)
    """Request path -> sha256 of the body it carried (uploads)."""
    body_sizes: dict[str, int] = field(default_factory=dict)
    drop: bool = False
    """Read each request, then close the connection without an answer (a crash mid-request)."""
    warm_markers: dict[str, str | None] = field(default_factory=dict)
    """Request target -> the ``X-Edgefleet-Warm`` header its last request carried (None: none)."""
    hold: dict[str, asyncio.Event] = field(default_factory=dict)
    """Target -> event: the next request for that target is answered only once the event is set."""
    held: list[str] = field(default_factory=list)
    """Targets of requests being held right now."""
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        async def handle(request: web.Request) -> web.StreamResponse:
            if request.path == "/healthz":
                return web.Response(text="ok")
            self.seen.append((request.method, request.raw_path))
            self.warm_markers[request.raw_path] = request.headers.get(WARM_HEADER)
            release = self.hold.pop(request.raw_path, None)
            if release is not None:
                self.held.append(request.raw_path)
                await release.wait()
                self.held.remove(request.raw_path)
            digest, size = hashlib.sha256(), 0
            async for chunk in request.content.iter_any():
                digest.update(chunk)
                size += len(chunk)
            self.bodies[request.raw_path] = digest.hexdigest()
            self.body_sizes[request.raw_path] = size
            if self.drop:
                assert request.transport is not None
                request.transport.abort()
                raise ConnectionResetError("stub edge dropped the request")
            if request.path.startswith("/big/"):
                total = int(request.path.removeprefix("/big/"))
                response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
                response.content_length = total
                await response.prepare(request)
                sent = 0
                while sent < total:
                    piece = BIG_CHUNK[: min(len(BIG_CHUNK), total - sent)]
                    await response.write(piece)
                    sent += len(piece)
                await response.write_eof()
                return response
            return web.Response(text=f"served by {self.name}", headers={"X-Cache": "HIT"})

        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/{tail:.*}", handle)
        self.runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
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

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}

    async def get(self, path: str, method: str = "GET") -> tuple[int, str]:
        async with self.session.request(method, self.url + path) as response:
            await response.read()
            return response.status, response.headers.get("X-Edge", "")

    async def view(self) -> dict[str, dict[str, Any]]:
        """Each member edge as the balancer (HAProxy) sees it, by name."""
        async with self.session.get(self.admin + "/members", headers=self.auth) as response:
            assert response.status == 200
            return {edge["name"]: edge for edge in await response.json()}

    async def put_members(self, members: list[dict[str, Any]]) -> int:
        async with self.session.put(self.admin + "/members", json=members, headers=self.auth) as response:
            await response.read()
            return response.status

    async def all_up(self) -> bool:
        view = await self.view()
        return bool(view) and all(edge["status"] == "UP" for edge in view.values())


def haproxy_available() -> None:
    require(shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin:/usr/bin") is not None, "HAProxy (apt haproxy)")


def settings_for(edges: list[StubEdge], **overrides: Any) -> BalancerSettings:
    base = BalancerSettings(
        listen=("127.0.0.1", free_port()), admin_listen=("127.0.0.1", 0), admin_token=TOKEN,
        edges=tuple((e.name, e.url, None) for e in edges), cluster="shop", name="b-1", threads=1,
        limits=HAProxyLimits(check_interval=0.2),
    )  # fmt: skip
    return replace(base, **overrides)


@contextlib.asynccontextmanager
async def running(count: int = 3, **overrides: Any) -> AsyncIterator[Setup]:
    """``count`` stub edges and a balancer in front of them, all up and checked healthy."""
    haproxy_available()
    edges = {f"edge-{i}": StubEdge(f"edge-{i}", free_port()) for i in range(count)}
    for edge in edges.values():
        await edge.start()
    balancer = Balancer(settings_for(list(edges.values()), **overrides))
    session = aiohttp.ClientSession()
    try:
        await balancer.start()
        setup = Setup(balancer, edges, session)
        if count:
            await eventually(setup.all_up, "every edge to pass its health check")
        yield setup
    finally:
        await session.close()
        await balancer.stop()
        for edge in edges.values():
            await edge.stop()
