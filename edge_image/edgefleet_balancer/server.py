"""The balancer: routes each request to the edge that owns its cache key, streams the answer back.

Only member edges are ever contacted; the Host header and absolute-form targets are ignored. A GET or
HEAD whose edge fails before answering is retried once on the next owner; other methods never are.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web
from edgefleet_edge.cachekey import normalise_path, primary_key
from edgefleet_edge.responses import end_to_end
from multidict import CIMultiDict
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from edgefleet import metric_names as names
from edgefleet.bus import PurgeBus, WarmMessage

from .kube_membership import EndpointSliceWatcher
from .membership import Membership
from .ring import choose

logger = logging.getLogger(__name__)

RETRYABLE = frozenset({"GET", "HEAD"})
PROBE_INTERVAL = 1.0
STREAM_CHUNK = 64 * 1024


@dataclass(frozen=True)
class BalancerSettings:
    listen: tuple[str, int]
    admin_listen: tuple[str, int]
    admin_token: str | None
    edges: tuple[tuple[str, str, str | None], ...] = ()
    hash_key: str = "pathAndQuery"
    load_factor: float = 1.25
    x_edge: bool = True
    redis: str | None = None
    redis_password: str | None = None
    cluster: str = "default"
    name: str = "balancer"
    request_timeout: float = 30.0
    kubernetes_service: tuple[str, str] | None = None
    """(namespace, service) whose ready endpoints are the edges."""
    edge_port: int = 8080
    edge_admin_port: int | None = 9090
    kubeconfig: str | None = None
    active_probes: bool = True
    """Probe each edge's /healthz every second (off only in tests whose edges are not reachable)."""


class BalancerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(names.BALANCER_REQUESTS.removesuffix("_total"), "Requests by edge.", ["edge", "code"],
                                registry=r)  # fmt: skip
        self.duration = Histogram(names.BALANCER_REQUEST_DURATION, "Latency by edge.", ["edge"],
                                  buckets=names.LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.errors = Counter(names.BALANCER_ERRORS.removesuffix("_total"), "Failed attempts.", ["edge", "kind"],
                              registry=r)  # fmt: skip
        self.retries = Counter(names.BALANCER_RETRIES.removesuffix("_total"), "Retried requests.", registry=r)
        self.spills = Counter(names.BALANCER_SPILLS.removesuffix("_total"), "Requests past an overloaded owner.",
                              registry=r)  # fmt: skip
        self.ejections = Counter(names.BALANCER_EJECTIONS.removesuffix("_total"), "Edges ejected.", ["edge"],
                                 registry=r)  # fmt: skip
        self.edges = Gauge(names.BALANCER_EDGES, "Member edges by state.", ["state"], registry=r)


class Balancer:
    def __init__(self, settings: BalancerSettings) -> None:
        self.settings = settings
        self.membership = Membership()
        self.membership.replace(list(settings.edges))
        self.metrics = BalancerMetrics()
        self.admin_token = settings.admin_token or secrets.token_urlsafe(32)
        if not settings.admin_token:
            logger.warning("No --admin-token given: the admin API (membership, metrics) is closed to everyone")
        self._session: aiohttp.ClientSession | None = None
        self._runners: list[web.AppRunner] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._redis: aioredis.Redis | None = None
        self._watcher: EndpointSliceWatcher | None = None
        self.data_port = 0
        self.admin_port = 0

    # ---- routing -------------------------------------------------------------------------------

    def route_key(self, request: web.Request) -> str:
        if self.settings.hash_key == "path":
            return normalise_path(request.path)
        return primary_key(request.path, request.query_string)

    def candidates(self, key: str) -> list[str]:
        healthy = self.membership.healthy()
        if not healthy:
            return []
        in_flight = {name: self.membership.members[name].in_flight for name in healthy}
        return choose(key, healthy, in_flight, self.settings.load_factor)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        key = self.route_key(request)
        order = self.candidates(key)
        if not order:
            return web.Response(status=503, text="503 no healthy edge\n", headers={"Retry-After": "1"})
        from edgefleet_balancer.ring import owners

        if order[0] != owners(key, self.membership.healthy())[0]:
            self.metrics.spills.inc()
        retryable = request.method in RETRYABLE
        # Only a retryable request is read into memory (GET/HEAD bodies are empty in practice); every other
        # body streams straight through to the one edge that gets it.
        body: Any = (await request.read() if request.can_read_body else None) if retryable else request.content
        attempts = order[:2] if retryable else order[:1]
        last_error = "no edge answered"
        for attempt, name in enumerate(attempts):
            if attempt:
                self.metrics.retries.inc()
            member = self.membership.members.get(name)
            if member is None:
                continue
            try:
                return await self._forward(request, name, member.url, body)
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                kind = "timeout" if isinstance(exc, TimeoutError) else "connect"
                self.metrics.errors.labels(name, kind).inc()
                if self.membership.record_failure(name):
                    self.metrics.ejections.labels(name).inc()
                    logger.warning("Ejected edge %s after repeated failures", name)
                last_error = f"edge {name}: {type(exc).__name__}"
        return web.Response(status=502, text=f"502 {last_error}\n")

    async def _forward(self, request: web.Request, name: str, base: str, body: Any) -> web.StreamResponse:
        assert self._session is not None
        member = self.membership.members[name]
        headers: CIMultiDict[str] = CIMultiDict()
        for header, value in end_to_end(list(request.headers.items())):
            if header.lower() not in {"host", "content-length"}:
                headers.add(header, value)
        previous = request.headers.get("X-Forwarded-For")
        peer = request.remote or ""
        headers["X-Forwarded-For"] = f"{previous}, {peer}" if previous else peer
        started = time.monotonic()
        member.in_flight += 1
        try:
            async with self._session.request(
                request.method, base.rstrip("/") + request.rel_url.path_qs, headers=headers, data=body,
                allow_redirects=False,
            ) as upstream:  # fmt: skip
                response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
                for header, value in end_to_end(list(upstream.headers.items())):
                    if header.lower() not in {"content-length", "date", "server"}:
                        response.headers.add(header, value)
                if upstream.content_length is not None:
                    response.content_length = upstream.content_length
                if self.settings.x_edge:
                    response.headers["X-Edge"] = name
                await response.prepare(request)
                # From here on the client has a response: failures can no longer be retried.
                async for chunk in upstream.content.iter_chunked(STREAM_CHUNK):
                    await response.write(chunk)
                await response.write_eof()
        finally:
            member.in_flight -= 1
        if self.membership.record_success(name):
            logger.info("Re-admitted edge %s", name)
        self.metrics.requests.labels(name, str(upstream.status)).inc()
        self.metrics.duration.labels(name).observe(time.monotonic() - started)
        return response

    # ---- health --------------------------------------------------------------------------------

    async def _probe_forever(self) -> None:
        assert self._session is not None
        while True:
            for name, member in list(self.membership.members.items()):
                try:
                    async with self._session.get(member.health_url, timeout=aiohttp.ClientTimeout(total=2)) as r:
                        ok = r.status == 200
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                if ok:
                    if self.membership.record_success(name):
                        logger.info("Re-admitted edge %s", name)
                elif self.membership.record_failure(name):
                    self.metrics.ejections.labels(name).inc()
                    logger.warning("Ejected edge %s: health probe failed", name)
            healthy = len(self.membership.healthy())
            self.metrics.edges.labels("healthy").set(healthy)
            self.metrics.edges.labels("ejected").set(len(self.membership.members) - healthy)
            await asyncio.sleep(PROBE_INTERVAL)  # the probe period

    # ---- warm events ---------------------------------------------------------------------------

    async def _warm(self, entry_id: str, message: WarmMessage) -> None:
        assert self._session is not None
        for path in message.paths:
            order = self.candidates(primary_key(path, ""))
            if not order:
                return
            base = self.membership.members[order[0]].url
            try:
                async with self._session.get(base.rstrip("/") + path) as response:
                    await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                logger.warning("Warming %s through %s failed: %s", path, order[0], exc)

    # ---- admin ---------------------------------------------------------------------------------

    def admin_app(self) -> web.Application:
        expected = f"Bearer {self.admin_token}".encode()

        @web.middleware
        async def auth(request: web.Request, handler: Any) -> web.StreamResponse:
            if request.path == "/healthz":
                return await handler(request)  # type: ignore[no-any-return]
            given = request.headers.get("Authorization", "").encode()
            if not given:
                return web.json_response({"error": "missing bearer token"}, status=401)
            if not hmac.compare_digest(given, expected):
                return web.json_response({"error": "wrong token"}, status=403)
            return await handler(request)  # type: ignore[no-any-return]

        async def healthz(request: web.Request) -> web.Response:
            return web.json_response({"status": "ok"})

        async def readyz(request: web.Request) -> web.Response:
            healthy = self.membership.healthy()
            status = 200 if healthy else 503
            return web.json_response({"healthy_edges": healthy}, status=status)

        async def metrics(request: web.Request) -> web.Response:
            return web.Response(
                body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
            )

        async def get_members(request: web.Request) -> web.Response:
            return web.json_response(
                [{"name": m.name, "url": m.url, "admin_url": m.admin_url, "healthy": m.healthy}
                 for m in self.membership.members.values()]
            )  # fmt: skip

        async def put_members(request: web.Request) -> web.Response:
            try:
                payload = await request.json()
                wanted = [(str(m["name"]), str(m["url"]), m.get("admin_url")) for m in payload]
            except (json.JSONDecodeError, UnicodeDecodeError, TypeError, KeyError) as exc:
                return web.json_response({"error": f"expected a JSON list of {{name, url}}: {exc}"}, status=400)
            for _, url, _admin in wanted:
                if not url.startswith(("http://", "https://")):
                    return web.json_response({"error": f"not an http URL: {url}"}, status=400)
            self.membership.replace(wanted)
            logger.info("Set membership to %d edges", len(wanted))
            return web.json_response({"members": [w[0] for w in wanted]})

        app = web.Application(middlewares=[auth])
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/readyz", readyz)
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/members", get_members)
        app.router.add_put("/members", put_members)
        return app

    # ---- lifecycle -----------------------------------------------------------------------------

    async def _serve(self, app: web.Application, address: tuple[str, int]) -> int:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, address[0], address[1], backlog=1024)
        await site.start()
        self._runners.append(runner)
        assert site._server is not None
        return int(site._server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=256, keepalive_timeout=30),
            timeout=aiohttp.ClientTimeout(total=self.settings.request_timeout, connect=2),
            auto_decompress=False,
        )
        data = web.Application(client_max_size=64 * 1024 * 1024)
        data.router.add_route("*", "/{tail:.*}", self.handle)
        self.data_port = await self._serve(data, self.settings.listen)
        self.admin_port = await self._serve(self.admin_app(), self.settings.admin_listen)
        loop = asyncio.get_running_loop()
        if self.settings.active_probes:
            self._tasks.append(loop.create_task(self._probe_forever()))
        if self.settings.kubernetes_service is not None:
            namespace, service = self.settings.kubernetes_service
            self._watcher = EndpointSliceWatcher(
                namespace, service, self.settings.edge_port, self.settings.edge_admin_port,
                self._set_members, loop, self.settings.kubeconfig,
            )  # fmt: skip
            self._watcher.start()
        if self.settings.redis:
            self._redis = aioredis.Redis.from_url(self.settings.redis, password=self.settings.redis_password)
            consumer = PurgeBus(self._redis, self.settings.cluster).warm_consumer("balancers", self.settings.name)
            self._tasks.append(loop.create_task(consumer.run(self._warm)))
        logger.info("Balancer serving on port %d (admin %d)", self.data_port, self.admin_port)

    def _set_members(self, members: list[tuple[str, str, str | None]]) -> None:
        self.membership.replace(members)
        logger.info("Membership from Kubernetes: %s", ", ".join(m[0] for m in members) or "no ready edges")

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for runner in self._runners:
            await runner.cleanup()
        if self._session is not None:
            await self._session.close()
        if self._redis is not None:
            await self._redis.aclose()
