"""An edge in front of a scriptable origin stub, both real HTTP servers on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from edgefleet_edge.server import Edge, EdgeSettings

from edgefleet.embedded_redis import free_port

Responder = Callable[[web.Request], web.StreamResponse | Awaitable[web.StreamResponse]]


@dataclass
class OriginStub:
    """The edge's peer: answers each path with whatever the test scripted, and counts requests."""

    routes: dict[str, Responder] = field(default_factory=dict)
    requests: list[web.Request] = field(default_factory=list)
    delay: asyncio.Event | None = None
    port: int = 0
    runner: web.AppRunner | None = None
    down: bool = False

    def count(self, path: str, method: str = "GET") -> int:
        return sum(1 for r in self.requests if r.path == path and r.method == method)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request)
        if self.delay is not None:
            await self.delay.wait()
        responder = self.routes.get(request.path)
        if responder is None:
            return web.Response(status=404, text="not found")
        response = responder(request)
        return await response if inspect.isawaitable(response) else response

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        self.port = self.port or free_port()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@dataclass
class EdgeUnderTest:
    edge: Edge
    origin: OriginStub
    session: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.edge.data_port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.edge.admin_port}"

    async def get(self, path: str, method: str = "GET", **headers: str) -> aiohttp.ClientResponse:
        wire = {name.replace("_", "-"): value for name, value in headers.items()}
        response = await self.session.request(method, self.url + path, headers=wire)
        await response.read()
        return response


def settings_for(origin: OriginStub, *, cache_dir: Path | None = None, memory: int = 8 * 2**20,
                 disk: int = 0, redis: str | None = None, name: str = "edge-t") -> EdgeSettings:  # fmt: skip
    return EdgeSettings(
        listen=("127.0.0.1", 0), admin_listen=("127.0.0.1", 0), origin=f"http://127.0.0.1:{origin.port}",
        memory=memory, disk=disk, cache_dir=cache_dir, name=name, admin_token="admin-secret", redis=redis,
        cluster="shop", grace=60.0,
    )  # fmt: skip


@pytest.fixture
async def origin() -> AsyncIterator[OriginStub]:
    stub = OriginStub()
    await stub.start()
    yield stub
    await stub.stop()


@pytest.fixture
async def edge(origin: OriginStub) -> AsyncIterator[EdgeUnderTest]:
    """An edge (its one data port: httptools) in front of the origin stub."""
    instance = Edge(settings_for(origin))
    await instance.start()
    session = aiohttp.ClientSession(auto_decompress=False)
    yield EdgeUnderTest(instance, origin, session)
    await session.close()
    await instance.stop()


@pytest.fixture
async def disk_edge(origin: OriginStub, tmp_path: Path) -> AsyncIterator[EdgeUnderTest]:
    """An edge with a 512 MiB disk tier (and the usual 8 MiB memory tier: bodies over
    its largest object, 1 MiB, stream). Plain S3-FIFO, which stores an object on its first request: these
    tests are about streaming; size-aware admission of streamed bodies has its own test."""
    settings = settings_for(origin, cache_dir=tmp_path / "cache", disk=512 * 2**20)
    instance = Edge(dataclasses.replace(settings, cache_policy="s3fifo"))
    await instance.start()
    under_test = EdgeUnderTest(instance, origin, aiohttp.ClientSession(auto_decompress=False))
    yield under_test
    await under_test.session.close()
    await under_test.edge.stop()  # a test may have restarted it
