"""The origin's aiohttp application: routes, the error boundary, request metrics, health and metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from edgefleet_origin import assets, upload_api
from edgefleet_origin.context import CONTEXT, OriginContext, context_of
from edgefleet_origin.errors import OriginError, RangeNotSatisfiable, StorageError, Unauthorized

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(error: OriginError) -> web.Response:
    headers: dict[str, str] = {}
    if isinstance(error, RangeNotSatisfiable):
        headers["Content-Range"] = f"bytes */{error.size}"
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="edgefleet-origin"'
    return web.json_response(
        {"error": error.reason, "status": error.status}, status=error.status, headers=headers, reason=None
    )


@web.middleware
async def error_boundary(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one place an ``OriginError`` becomes an HTTP response."""
    try:
        return await handler(request)
    except StorageError as exc:
        context_of(request).metrics.storage_errors.labels(operation=exc.operation).inc()
        log.warning("Storage failed for %s %s: %s", request.method, request.path, exc.reason, exc_info=exc.__cause__)
        return error_response(exc)
    except OriginError as exc:
        return error_response(exc)


EDGE_VIA_MARK = "(edgefleet)"
"""Every edge names itself in the ``Via`` header it sends the origin (``1.1 <edge> (edgefleet)``)."""
PRIVATE_PREFIXES = ("/metrics", "/api/")


def forwarded_by_an_edge(request: web.Request) -> bool:
    return any(EDGE_VIA_MARK in via for via in request.headers.getall("Via", ()))


@web.middleware
async def data_path_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Metrics and the upload/admin API are not for shoppers: a request an edge forwarded (anything that came
    through the public balancer) is answered 404 for them, as if they did not exist. Clients can add a ``Via``
    header but cannot remove the one the edge adds."""
    if request.path.startswith(PRIVATE_PREFIXES) and forwarded_by_an_edge(request):
        return web.json_response({"error": "not found", "status": 404}, status=404)
    return await handler(request)


@web.middleware
async def request_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = context_of(request).metrics
    started = time.perf_counter()
    code = "500"
    try:
        response = await handler(request)
        code = str(response.status)
        return response
    except web.HTTPException as exc:
        code = str(exc.status)
        raise
    finally:
        method = request.method if request.method in _KNOWN_METHODS else "other"
        metrics.requests.labels(method=method, code=code).inc()
        metrics.request_duration.labels(method=method).observe(time.perf_counter() - started)


_KNOWN_METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS"})


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    ctx = context_of(request)
    await ctx.storage.check()  # StorageError -> 503 through the error boundary
    # Unpublished changes do not stop the origin serving (the bus is not needed for that): ready, and says so.
    waiting = ctx.notifier.backlog().describe()
    return web.Response(text=f"ready; {waiting}\n" if waiting else "ready\n")


async def metrics(request: web.Request) -> web.Response:
    registry = context_of(request).metrics.registry
    response = web.Response(body=generate_latest(registry))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def build_app(context: OriginContext, *, data: bool = True, admin: bool = True) -> web.Application:
    """The data routes (``/assets``), the admin routes (``/metrics``, ``/api``), or both; health on each."""
    # Upload bodies are streamed (request.content), so client_max_size only bounds webhook bodies.
    app = web.Application(middlewares=[data_path_guard, request_metrics, error_boundary], client_max_size=1024 * 1024)
    app[CONTEXT] = context
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if data:
        app.router.add_get("/assets/{key:.+}", assets.serve_asset)  # add_get also routes HEAD
    if not admin:
        return app
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/files", upload_api.list_files)
    app.router.add_get("/api/outbox", upload_api.outbox)
    app.router.add_get("/api/files/{key:.+}/upload-url", upload_api.upload_url)
    app.router.add_put("/api/files/{key:.+}", upload_api.put_file)
    app.router.add_delete("/api/files/{key:.+}", upload_api.delete_file)
    app.router.add_post("/api/events/minio", upload_api.minio_webhook)
    return app
