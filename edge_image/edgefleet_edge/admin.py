"""The admin port: health, readiness, metrics and local purge; all but health and readiness need the token."""

from __future__ import annotations

import hmac
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from edgefleet.bus import PurgeMessage

from .metrics import EdgeMetrics
from .purging import apply_purge
from .store import Store

# Kubelet probes cannot carry a secret, and health and readiness reveal nothing worth protecting.
OPEN_PATHS = frozenset({"/healthz", "/readyz"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def token_middleware(token: str) -> Any:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS:
            return await handler(request)
        given = request.headers.get("Authorization", "").encode()
        if not given:
            return web.json_response({"error": "missing bearer token"}, status=401,
                                     headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
        if not hmac.compare_digest(given, expected):
            return web.json_response({"error": "wrong token"}, status=403)
        return await handler(request)

    return check


class AdminState:
    def __init__(self) -> None:
        self.ready = False
        self.reason = "catching up with the purge bus"


PurgeAction = Callable[[PurgeMessage], Awaitable[int]]
"""Applies a purge; the number of objects affected."""
Readiness = Callable[[], tuple[bool, str]]
"""(ready, reason when not)."""


def admin_app(token: str, store: Store, metrics: EdgeMetrics, state: AdminState) -> web.Application:
    """The admin port of a single-process edge."""

    async def purge(message: PurgeMessage) -> int:
        return apply_purge(store, message, metrics)

    async def render_metrics() -> bytes:
        metrics.flush()
        return generate_latest(metrics.registry)

    return admin_routes(token, lambda: (state.ready, state.reason), render_metrics, purge)


def admin_routes(
    token: str, readiness: Readiness, render_metrics: Callable[[], Awaitable[bytes]], apply: PurgeAction
) -> web.Application:
    """The admin API over whatever serves it: one edge process, or the supervisor of its workers."""
    app = web.Application(middlewares=[token_middleware(token)], client_max_size=1024 * 1024)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        ready, reason = readiness()
        if ready:
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "not ready", "reason": reason}, status=503)

    async def metrics_endpoint(request: web.Request) -> web.Response:
        return web.Response(body=await render_metrics(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def purge(request: web.Request) -> web.Response:
        try:
            payload = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return web.json_response({"error": "body must be JSON"}, status=400)
        if not isinstance(payload, dict):
            return web.json_response({"error": "body must be a JSON object"}, status=400)
        try:
            message = PurgeMessage(
                purge_id=f"local-{uuid.uuid4()}",
                paths=tuple(payload.get("paths", ())),
                prefixes=tuple(payload.get("prefixes", ())),
                tags=tuple(payload.get("tags", ())),
                all=bool(payload.get("all", False)),
                soft=bool(payload.get("soft", False)),
                issuer="admin",
                issued_at=time.time(),
            )
        except (ValidationError, TypeError) as exc:
            return web.json_response({"error": f"invalid purge: {exc}"}, status=400)
        if message.is_empty:
            return web.json_response({"error": "name paths, prefixes, tags or all"}, status=400)
        affected = await apply(message)
        return web.json_response({"purged": affected, "soft": message.soft})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_post("/purge", purge)
    return app
