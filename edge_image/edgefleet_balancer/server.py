"""The balancer's control plane: HAProxy carries the traffic, this agent tells it where the edges are.

The agent renders HAProxy's configuration, runs HAProxy as a supervised child, learns membership (static
``--edges``, ``PUT /members`` from ``edgefleet up``, or the edges' EndpointSlices in Kubernetes) and puts it
into HAProxy's server slots through the runtime API. It also serves the admin port (health, readiness,
membership as HAProxy sees it, and HAProxy's own Prometheus metrics) and sends warm events from the bus
through HAProxy's warm frontend (a unix socket only the agent can open; see ``haproxy_config``), so each
lands on the edge that owns its key, with the fleet's warm marker (``edgefleet.warm_marker``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import secrets
import shutil
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest
from yarl import URL

from edgefleet import metric_names as names
from edgefleet.bus import PurgeBus, WarmMessage
from edgefleet.warm_marker import HEADER as WARM_HEADER
from edgefleet.warm_marker import warm_marker

from .haproxy_config import BACKEND, HAProxyConfig, HAProxyLimits, render, slot_name
from .haproxy_process import HAProxyProcess, HAProxyStartError
from .kube_membership import EndpointSliceWatcher
from .membership import Member, MembershipError, assign_slots, reset_commands, runtime_commands
from .runtime_api import RuntimeApi, RuntimeApiError, ServerStat

logger = logging.getLogger(__name__)

EdgeTriple = tuple[str, str, "str | None"]
"""(name, data URL, admin URL): how members arrive from the CLI, the runtime and Kubernetes."""


@dataclass(frozen=True)
class BalancerSettings:
    listen: tuple[str, int]
    """HAProxy's data port (a real port: HAProxy binds it, so 0 is not allowed)."""
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
    kubernetes_service: tuple[str, str] | None = None
    """(namespace, service) whose ready endpoints are the edges."""
    edge_port: int = 8080
    edge_admin_port: int | None = 9090
    kubeconfig: str | None = None
    haproxy: str = "haproxy"
    """The HAProxy binary (Debian installs it as /usr/sbin/haproxy)."""
    max_edges: int = 64
    """Server slots in HAProxy's backend: the most edges one balancer can route to."""
    threads: int = 0
    """HAProxy threads; 0 lets HAProxy use one per CPU it may run on."""
    run_dir: Path | None = None
    """Where the configuration and sockets go; a fresh temporary directory when None."""
    limits: HAProxyLimits = field(default_factory=HAProxyLimits)
    health_checks: bool = True
    """Off only in tests whose edges are not reachable (nothing may be sent to them)."""


class BalancerError(RuntimeError):
    """The balancer could not start."""


class BalancerMetrics:
    """The agent's own few metrics; HAProxy's exporter carries everything about traffic."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.members = Gauge(names.BALANCER_MEMBERS, "Edges the balancer was told about.", registry=r)
        self.membership_changes = Counter(names.BALANCER_MEMBERSHIP_CHANGES.removesuffix("_total"),
                                          "Membership changes applied to HAProxy.", registry=r)  # fmt: skip
        self.haproxy_restarts = Counter(names.BALANCER_HAPROXY_RESTARTS.removesuffix("_total"),
                                        "Times HAProxy exited and was started again.", registry=r)  # fmt: skip
        self.warm_requests = Counter(names.BALANCER_WARM_REQUESTS.removesuffix("_total"),
                                     "Warm events' paths sent through HAProxy, by outcome.", ["outcome"],
                                     registry=r)  # fmt: skip
        self.panic_routing = Gauge(names.BALANCER_PANIC_ROUTING,
                                   "1 while no edge is ready and the live not-ready ones take the traffic.",
                                   registry=r)  # fmt: skip


async def resolve_member(name: str, url: str, admin_url: str | None) -> Member:
    """A member with its host resolved to an address (HAProxy's runtime API takes addresses)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise MembershipError(f"edge {name}: not an http:// URL: {url!r}")
    try:
        port = parts.port or 80
        check_port = urlsplit(admin_url).port or 80 if admin_url else None
    except ValueError as exc:
        raise MembershipError(f"edge {name}: {exc}") from exc
    if not name or any(c.isspace() for c in name) or ";" in name:
        raise MembershipError(f"edge name {name!r} is empty or has whitespace or ';'")
    host = parts.hostname
    try:
        ipaddress.ip_address(host)
    except ValueError:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise MembershipError(f"edge {name}: cannot resolve {host}: {exc}") from exc
        host = str(infos[0][4][0])
    return Member(name=name, host=host, port=port, check_port=check_port)


class Balancer:
    def __init__(self, settings: BalancerSettings) -> None:
        if settings.listen[1] == 0:
            raise BalancerError("the data port must be given (HAProxy binds it)")
        self.settings = settings
        self.metrics = BalancerMetrics()
        self.admin_token = settings.admin_token or secrets.token_urlsafe(32)
        if not settings.admin_token:
            logger.warning("No --admin-token given: the admin API (membership, metrics) is closed to everyone")
        self._own_run_dir = settings.run_dir is None
        self.run_dir = settings.run_dir or Path(tempfile.mkdtemp(prefix="edgefleet-haproxy-"))
        self.api = RuntimeApi(self.run_dir / "haproxy.sock")
        self.names_map = self.run_dir / "edges.map"
        self.config_path = self.run_dir / "haproxy.cfg"
        self.metrics_socket = self.run_dir / "metrics.sock"
        self.warm_socket = self.run_dir / "warm.sock"
        self.haproxy = HAProxyProcess(self._haproxy_binary(), self.config_path, self.api)
        self.members: dict[str, EdgeTriple] = {}
        """What the balancer was told, by name."""
        self.slots: dict[int, Member] = {}
        """What HAProxy has now, by slot."""
        self._unsure = False
        """A runtime command failed halfway: ``slots`` may not be what HAProxy has."""
        self._lock = asyncio.Lock()
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._redis: aioredis.Redis | None = None
        self._watcher: EndpointSliceWatcher | None = None
        self._session: aiohttp.ClientSession | None = None
        self._stopping = False
        self.admin_port = 0

    def _haproxy_binary(self) -> str:
        found = shutil.which(self.settings.haproxy) or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
        return found or self.settings.haproxy

    @property
    def data_port(self) -> int:
        return self.settings.listen[1]

    def haproxy_config(self) -> HAProxyConfig:
        return HAProxyConfig(
            listen=self.settings.listen, metrics_socket=self.metrics_socket, socket=self.api.socket,
            edge_names_map=self.names_map, warm_socket=self.warm_socket, hash_key=self.settings.hash_key,
            load_factor=self.settings.load_factor,
            x_edge=self.settings.x_edge, slots=self.settings.max_edges, threads=self.settings.threads,
            limits=self.settings.limits, health_checks=self.settings.health_checks,
        )  # fmt: skip

    # ---- membership ----------------------------------------------------------------------------

    async def set_members(self, wanted: list[EdgeTriple]) -> None:
        """Make HAProxy route to exactly these edges; raises MembershipError and changes nothing if one is bad."""
        resolved = [await resolve_member(name, url, admin) for name, url, admin in wanted]
        target = assign_slots(resolved, self.settings.max_edges)
        async with self._lock:
            self.members = {name: (name, url, admin) for name, url, admin in wanted}
            self.metrics.members.set(len(self.members))
            await self._apply(target)

    async def _apply(self, target: dict[int, Member]) -> None:
        names_map = str(self.names_map) if self.settings.x_edge else None
        checks = self.settings.health_checks
        if self._unsure:
            commands = reset_commands(target, self.settings.max_edges, names_map, checks)
        else:
            commands = runtime_commands(self.slots, target, names_map, checks)
        if not commands:
            return
        try:
            for command in commands:
                await self.api.change(command)
        except RuntimeApiError:
            # HAProxy is in an unknown state: any slot may hold anything. The next apply sets every slot
            # again (the wanted ones filled, all others emptied), unless HAProxy restarts first and so
            # starts from empty slots itself.
            self._unsure = True
            raise
        self.slots = dict(target)
        self._unsure = False
        self.metrics.membership_changes.inc()
        logger.info("Set membership to %d edges: %s", len(target),
                    ", ".join(sorted(m.name for m in target.values())) or "none")  # fmt: skip

    async def edge_view(self) -> list[dict[str, Any]]:
        """Each member as HAProxy sees it: its slot, status (UP/DOWN/...), last health check, connections."""
        stats = {stat.slot: stat for stat in await self.api.server_stats(BACKEND)}
        view = []
        for slot, member in sorted(self.slots.items(), key=lambda item: item[1].name):
            stat: ServerStat | None = stats.get(slot_name(slot))
            name, url, admin = self.members.get(member.name, (member.name, "", None))
            view.append({
                "name": name, "url": url, "admin_url": admin, "slot": slot_name(slot),
                "status": stat.status if stat else "UNKNOWN", "healthy": bool(stat and stat.serving),
                "check": stat.check_status if stat else "", "connections": stat.active_connections if stat else 0,
            })  # fmt: skip
        return view

    def _kube_members(self, members: list[EdgeTriple]) -> None:
        task = asyncio.get_running_loop().create_task(self._set_kube_members(members))
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    async def _set_kube_members(self, members: list[EdgeTriple]) -> None:
        try:
            await self.set_members(members)
        except (MembershipError, RuntimeApiError) as exc:
            logger.error("Could not apply membership from Kubernetes: %s", exc)

    # ---- HAProxy supervision -------------------------------------------------------------------

    async def _supervise(self) -> None:
        while not self._stopping:
            status = await self.haproxy.wait()
            if self._stopping:
                return
            logger.error("HAProxy exited with status %s; starting it again", status)
            self.metrics.haproxy_restarts.inc()
            async with self._lock:
                self.slots = {}
            while not self._stopping:
                try:
                    await self._start_haproxy()
                    break
                except (HAProxyStartError, RuntimeApiError) as exc:
                    logger.error("HAProxy did not come back: %s", exc)
                    await asyncio.sleep(1.0)  # back off before the next attempt

    async def _start_haproxy(self) -> None:
        self.names_map.write_text("")
        await self.haproxy.start()
        async with self._lock:
            self.slots = {}
            self._unsure = False  # a fresh HAProxy: every slot empty, the map empty
            members = list(self.members.values())
        if members:
            await self.set_members(members)

    # ---- warm events ---------------------------------------------------------------------------

    async def warm(self, path: str) -> tuple[int, str]:
        """GET ``path`` (a request target: path and query, sent exactly as given) on the edge that owns it,
        through the warm frontend, with the warm marker; (status, edge that answered)."""
        assert self._session is not None
        headers = {WARM_HEADER: warm_marker(self.admin_token, path)}
        url = URL(f"http://edgefleet-warm{path}", encoded=True)
        async with self._session.get(url, headers=headers) as response:
            await response.read()
            return response.status, response.headers.get("X-Edge", "?")

    async def _warm(self, entry_id: str, message: WarmMessage) -> None:
        for path in message.paths:
            try:
                status, edge = await self.warm(path)
                self.metrics.warm_requests.labels("ok" if status < 500 else "error").inc()
                logger.debug("Warmed %s through %s (%d)", path, edge, status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.metrics.warm_requests.labels("error").inc()
                logger.warning("Warming %s through HAProxy failed: %s", path, exc)

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
            if not self.haproxy.running():
                return web.json_response({"status": "haproxy is not running"}, status=503)
            return web.json_response({"status": "ok"})

        async def readyz(request: web.Request) -> web.Response:
            try:
                view = await self.edge_view()
            except RuntimeApiError as exc:
                return web.json_response({"error": str(exc)}, status=503)
            healthy = [edge["name"] for edge in view if edge["healthy"]]
            return web.json_response({"healthy_edges": healthy}, status=200 if healthy else 503)

        async def metrics(request: web.Request) -> web.Response:
            assert self._session is not None
            own = generate_latest(self.metrics.registry)
            try:
                connector = aiohttp.UnixConnector(str(self.metrics_socket))
                async with (
                    aiohttp.ClientSession(connector=connector) as session,
                    session.get("http://haproxy/metrics?no-maint") as response,
                ):
                    exported = await response.read()
            except aiohttp.ClientError as exc:
                logger.warning("HAProxy's exporter did not answer: %s", exc)
                exported = b""
            return web.Response(body=exported + own, headers={"Content-Type": CONTENT_TYPE_LATEST})

        async def get_members(request: web.Request) -> web.Response:
            try:
                return web.json_response(await self.edge_view())
            except RuntimeApiError as exc:
                return web.json_response({"error": str(exc)}, status=503)

        async def put_members(request: web.Request) -> web.Response:
            try:
                payload = await request.json()
                wanted = [(str(m["name"]), str(m["url"]), m.get("admin_url")) for m in payload]
            except (json.JSONDecodeError, UnicodeDecodeError, TypeError, KeyError) as exc:
                return web.json_response({"error": f"expected a JSON list of {{name, url}}: {exc}"}, status=400)
            try:
                await self.set_members(wanted)
            except MembershipError as exc:
                return web.json_response({"error": str(exc)}, status=400)
            except RuntimeApiError as exc:
                return web.json_response({"error": str(exc)}, status=503)
            return web.json_response({"members": [w[0] for w in wanted]})

        app = web.Application(middlewares=[auth])
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/readyz", readyz)
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/members", get_members)
        app.router.add_put("/members", put_members)
        return app

    # ---- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.chmod(0o700)
        self.config_path.write_text(render(self.haproxy_config()))
        self.names_map.write_text("")
        await self.haproxy.check_config()
        # Warm requests only: every request of this session goes to HAProxy's warm frontend.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.UnixConnector(str(self.warm_socket)),
            timeout=aiohttp.ClientTimeout(total=60), auto_decompress=False,
        )  # fmt: skip
        await self._start_haproxy()
        if self.settings.edges:
            await self.set_members(list(self.settings.edges))
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._supervise()))
        self._runner = web.AppRunner(self.admin_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, *self.settings.admin_listen)
        await site.start()
        assert site._server is not None
        self.admin_port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        if self.settings.kubernetes_service is not None:
            namespace, service = self.settings.kubernetes_service
            self._watcher = EndpointSliceWatcher(
                namespace, service, self.settings.edge_port, self.settings.edge_admin_port,
                self._kube_members, loop, self.settings.kubeconfig,
            )  # fmt: skip
            self.metrics.panic_routing.set_function(lambda: float(self._watcher is not None and self._watcher.panic))
            self._watcher.start()
        if self.settings.redis:
            self._redis = aioredis.Redis.from_url(self.settings.redis, password=self.settings.redis_password)
            consumer = PurgeBus(self._redis, self.settings.cluster).warm_consumer("balancers", self.settings.name)
            self._tasks.append(loop.create_task(consumer.run(self._warm)))
        logger.info("Balancer serving on port %d through HAProxy (admin %d)", self.data_port, self.admin_port)

    def begin_stop(self) -> None:
        """From here on an exiting HAProxy is not restarted."""
        self._stopping = True

    async def stop(self) -> None:
        self.begin_stop()
        if self._watcher is not None:
            self._watcher.stop()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._runner is not None:
            await self._runner.cleanup()
        await self.haproxy.stop()
        if self._session is not None:
            await self._session.close()
        if self._redis is not None:
            await self._redis.aclose()
        if self._own_run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)
