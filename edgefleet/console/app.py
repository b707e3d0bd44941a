"""The console's aiohttp application: the security boundary, routes, and the background sampler.

Every route except sign-in, health and static files needs a session; every state-changing request also
needs the session's CSRF token (``X-CSRF-Token``, or the ``csrf`` form field) and, when the browser sends
one, an ``Origin`` equal to the console's own. The console token is compared and forgotten: it is never
put in a cookie, a URL, a page or a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from edgefleet.bus.streams import BusError
from edgefleet.charts import Marker

from . import pages
from .fleet_view import DnsFleetView, FleetView, LocalFleetView
from .origin_client import ALLOWED_TYPES, KEY, ObjectDetails, OriginClient, OriginProblem
from .purges import PurgeDesk, PurgeInputError, describe, purge_message
from .sessions import (
    CSRF_FIELD,
    CSRF_HEADER,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Session,
    SessionStore,
    SignInThrottle,
    csrf_matches,
    same_secret,
)
from .settings import ConsoleSettings
from .stats import HOUR, EdgeSampler, PrometheusHistory, fleet_charts, scaling_markers

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STATIC = Path(__file__).parent / "static"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_PATHS = frozenset({"/login", "/healthz"})
LIST_LIMIT = 200
TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_THUMBNAIL = 8 * 1024 * 1024
PURGE_WATCH_SECONDS = 60.0

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class ConsoleError(Exception):
    """A request the console refuses: ``status`` and a one-line ``reason`` for the person using it."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class Console:
    settings: ConsoleSettings
    sessions: SessionStore
    throttle: SignInThrottle
    origin: OriginClient
    view: FleetView
    sampler: EdgeSampler
    desk: PurgeDesk | None
    history: PrometheusHistory | None


CONSOLE = web.AppKey("console", Console)
SESSION = "edgefleet.console.session"


def console_of(request: web.Request) -> Console:
    return request.app[CONSOLE]


def session_of(request: web.Request) -> Session:
    session: Session = request[SESSION]
    return session


def _error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason, "status": status}, status=status)


# ---- the security boundary --------------------------------------------------------------------------


def _wants_json(request: web.Request) -> bool:
    return (
        request.path.startswith(("/api/", "/thumb/"))
        or request.path.endswith(("/list", "/panel", "/recent"))
        or request.method not in SAFE_METHODS
    )


@web.middleware
async def security(request: web.Request, handler: Handler) -> web.StreamResponse:
    console = console_of(request)
    public = request.path in PUBLIC_PATHS or request.path.startswith("/static/")
    if not public:
        session = console.sessions.get(request.cookies.get(SESSION_COOKIE))
        if session is None:
            if _wants_json(request):
                return _headers(_error(401, "sign in first: no valid console session"))
            return _headers(web.HTTPSeeOther("/login"))
        if request.method not in SAFE_METHODS:
            presented = request.headers.get(CSRF_HEADER)
            if presented is None and request.content_type == "application/x-www-form-urlencoded":
                presented = str((await request.post()).get(CSRF_FIELD, ""))
            if not csrf_matches(session, presented):
                return _headers(_error(403, "missing or wrong CSRF token: reload the page and try again"))
            origin = request.headers.get("Origin")
            if origin is not None and origin != f"{request.scheme}://{request.host}":
                return _headers(_error(403, f"request from another site ({origin}) refused"))
        request[SESSION] = session
    try:
        response = await handler(request)
    except ConsoleError as exc:
        response = _error(exc.status, exc.reason)
    except OriginProblem as exc:
        response = _error(exc.status, exc.reason)
    except PurgeInputError as exc:
        response = _error(400, str(exc))
    except web.HTTPException as exc:
        if exc.status >= 400 and _wants_json(request):
            response = _error(exc.status, exc.reason)
        else:
            return _headers(exc)
    return _headers(response)


def _headers(response: web.StreamResponse) -> web.StreamResponse:
    if not response.prepared:
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        # Not "no-referrer": with it, browsers send "Origin: null" on form posts and the Origin check fails.
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Cache-Control", "no-store")
    return response


# ---- sign-in -------------------------------------------------------------------------------------------


def _login_response(console: Console, message: str = "", status: int = 200) -> web.Response:
    nonce = secrets.token_urlsafe(24)
    response = web.Response(text=pages.login_page(nonce, message), content_type="text/html", status=status)
    response.set_cookie(LOGIN_COOKIE, nonce, httponly=True, samesite="Strict", path="/login", max_age=1800,
                        secure=console.settings.secure_cookies)  # fmt: skip
    return response


async def login_form(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    if console.sessions.get(request.cookies.get(SESSION_COOKIE)) is not None:
        raise web.HTTPSeeOther("/assets")
    return _login_response(console)


async def login(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    client = request.remote or "?"
    if not console.throttle.allowed(client):
        return _login_response(console, "Too many failed sign-ins from your address; wait a minute.", 429)
    form = await request.post()
    nonce, cookie = str(form.get(CSRF_FIELD, "")), request.cookies.get(LOGIN_COOKIE, "")
    if not nonce or not cookie or not same_secret(nonce, cookie):
        return _login_response(console, "The sign-in form expired; please sign in again.", 403)
    session = console.sessions.sign_in(str(form.get("token", "")), console.settings.console_token)
    if session is None:
        console.throttle.failed(client)
        logger.warning("Refused a console sign-in from %s: wrong token", client)
        return _login_response(console, "That is not this fleet's console token.", 401)
    logger.info("Signed in a console session from %s", client)
    response = web.HTTPSeeOther("/assets")
    response.set_cookie(SESSION_COOKIE, session.sid, httponly=True, samesite="Strict", path="/",
                        secure=console.settings.secure_cookies)  # fmt: skip
    response.del_cookie(LOGIN_COOKIE, path="/login")
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    console.sessions.end(session_of(request).sid)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    logger.info("Signed out a console session")
    return response


# ---- assets --------------------------------------------------------------------------------------------


def _key(request: web.Request) -> str:
    key = request.match_info["key"]
    if not KEY.fullmatch(key):
        raise ConsoleError(400, f"not allowed as a key: {key[:120]!r} (use A-Z a-z 0-9 . _ - and /, no '..')")
    return key


def _prefix(text: str) -> str:
    text = text.strip()
    if text and not KEY.fullmatch(text.rstrip("/")):
        raise ConsoleError(400, f"not allowed as a prefix: {text[:120]!r}")
    return text


async def find_assets(
    console: Console, prefix: str, q: str, tag: str
) -> tuple[list[dict[str, object]], dict[str, ObjectDetails], bool]:
    objects, truncated = await console.origin.list_objects(_prefix(prefix), LIST_LIMIT)
    if q.strip():
        needle = q.strip().lower()
        objects = [o for o in objects if needle in str(o["key"]).lower()]
    details = await console.origin.details_many([str(o["key"]) for o in objects])
    if tag.strip():
        wanted = tag.strip()
        objects = [o for o in objects if str(o["key"]) in details and wanted in details[str(o["key"])].tags]
    return objects, details, truncated


def _query(request: web.Request) -> tuple[str, str, str]:
    return request.query.get("prefix", ""), request.query.get("q", ""), request.query.get("tag", "")


async def assets_page(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    prefix, q, tag = _query(request)
    try:
        objects, details, truncated = await find_assets(console, prefix, q, tag)
        listing = pages.asset_list(objects, details, truncated)
    except (ConsoleError, OriginProblem) as exc:
        listing = pages.asset_list([], {}, False, exc.reason)
    html = pages.assets_page(session_of(request).csrf, prefix, q, tag, listing, console.settings.max_upload_size)
    return web.Response(text=html, content_type="text/html")


async def assets_fragment(request: web.Request) -> web.StreamResponse:
    objects, details, truncated = await find_assets(console_of(request), *_query(request))
    return web.Response(text=pages.asset_list(objects, details, truncated), content_type="text/html")


async def assets_json(request: web.Request) -> web.StreamResponse:
    objects, details, truncated = await find_assets(console_of(request), *_query(request))
    for obj in objects:
        info = details.get(str(obj["key"]))
        obj["tags"] = list(info.tags) if info else []
        obj["content_type"] = info.content_type if info else ""
    return web.json_response({"objects": objects, "truncated": truncated})


async def object_page(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    key = _key(request)
    info = await console.origin.details(key)
    if info is None:
        raise web.HTTPNotFound(text=pages.layout("Not found", f"<p>No asset {key!r}.</p>", csrf=None),
                               content_type="text/html")  # fmt: skip
    edge = cache = ""
    accept = request.headers.get("Accept", "")
    with contextlib.suppress(OriginProblem):
        # The edge the balancer hashes this URL to; each variant URL (?w=...) has its own owner.
        async with await console.origin.through_fleet(key, "", accept, method="HEAD") as response:
            edge = response.headers.get("X-Edge", "")
        # The thumbnail's status at the fleet, as the page's own preview will find it (and warms it).
        async with await console.origin.through_fleet(key, "?w=160", accept) as response:
            await response.content.read(MAX_THUMBNAIL)
            cache = response.headers.get("X-Cache", "")
    html = pages.object_page(session_of(request).csrf, info, edge, cache, console.settings.widths,
                             console.settings.formats)  # fmt: skip
    return web.Response(text=html, content_type="text/html")


async def thumbnail(request: web.Request) -> web.StreamResponse:
    """The asset at ``?w=160`` through the fleet, as a shopper would get it (so browsing warms the cache)."""
    key = _key(request)
    response = await console_of(request).origin.through_fleet(key, "?w=160", request.headers.get("Accept", ""))
    async with response:
        if response.content_length is not None and response.content_length > MAX_THUMBNAIL:
            raise ConsoleError(502, "the thumbnail is too large to show")
        body = await response.content.read(MAX_THUMBNAIL + 1)
        if len(body) > MAX_THUMBNAIL:
            raise ConsoleError(502, "the thumbnail is too large to show")
        headers = {k: response.headers[k] for k in ("X-Cache", "X-Edge", "Content-Type") if k in response.headers}
        return web.Response(body=body, status=response.status, headers=headers)


def _size_text(size: int) -> str:
    text = f"{size / 2**20:.1f} MiB" if size >= 2**17 else f"{size / 2**10:.1f} KiB"
    return text.replace(".0 ", " ")


async def upload(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    key = _key(request)
    content_type = request.content_type.lower()
    if content_type not in ALLOWED_TYPES:
        raise ConsoleError(415, f"wrong type: {content_type or 'unknown'} files cannot be uploaded here "
                                "(images: JPEG, PNG, WebP, AVIF, GIF; or CSS, JavaScript, fonts, JSON)")  # fmt: skip
    size, limit = request.content_length, console.settings.max_upload_size
    if size is None:
        raise ConsoleError(411, "the upload must say its size (Content-Length)")
    if size > limit:
        raise ConsoleError(413, f"too large: {_size_text(size)} is over the {_size_text(limit)} limit")
    tags = request.query.get("tags", "").split()
    bad = [t for t in tags if not TAG.fullmatch(t)]
    if bad:
        raise ConsoleError(400, f"not allowed as a tag: {bad[0][:60]!r} (letters, digits, . _ -)")
    if request.query.get("replace") != "1" and await console.origin.details(key) is not None:
        raise ConsoleError(409, f"{key} already exists: tick 'Replace' to overwrite it")
    status, body = await console.origin.put(key, request, content_type, " ".join(tags))
    logger.info("%s asset %s (%d bytes) from the console", "Replaced" if body.get("replaced") else "Uploaded", key,
                size)  # fmt: skip
    return web.json_response(body, status=status)


async def delete(request: web.Request) -> web.StreamResponse:
    key = _key(request)
    await console_of(request).origin.delete(key)
    logger.info("Deleted asset %s from the console", key)
    return web.json_response({"key": key, "deleted": True})


# ---- purges --------------------------------------------------------------------------------------------


def _desk(request: web.Request) -> PurgeDesk:
    desk = console_of(request).desk
    if desk is None:
        raise ConsoleError(503, "no purge bus is configured for this console")
    return desk


async def purges_page(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    recent = await console.desk.recent() if console.desk is not None else []
    html = pages.purges_page(session_of(request).csrf, recent, console.desk is not None)
    return web.Response(text=html, content_type="text/html")


async def purges_fragment(request: web.Request) -> web.StreamResponse:
    return web.Response(text=pages.purge_rows(await _desk(request).recent()), content_type="text/html")


async def purges_json(request: web.Request) -> web.StreamResponse:
    return web.json_response({"purges": [s.as_json() for s in await _desk(request).recent()]})


async def purge(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    desk = _desk(request)
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise ConsoleError(400, "send the purge as JSON: {kind, targets, soft}") from None
    if not isinstance(body, dict):
        raise ConsoleError(400, "send the purge as a JSON object: {kind, targets, soft}")
    targets = body.get("targets", [])
    if isinstance(targets, str):
        targets = targets.splitlines()
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        raise ConsoleError(400, "targets must be a list of strings")
    message = purge_message(str(body.get("kind", "")), targets, bool(body.get("soft", False)), "console")
    members = [edge.name for edge in await console.view.edges()]
    try:
        issued = await desk.issue(message, members, console.view.names_are_known)
    except BusError as exc:
        raise ConsoleError(503, f"the purge bus is unreachable: {exc}") from exc
    logger.info("Published %s as %s to %d edges", describe(message), issued.entry_id, len(members))
    return web.json_response({"entry_id": issued.entry_id, "expected": list(issued.expected),
                              "description": describe(message)}, status=202)  # fmt: skip


async def purge_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the purge's status each time an edge acknowledges, until complete (or 60 s)."""
    desk = _desk(request)
    entry_id = request.match_info["entry"]
    if not re.fullmatch(r"[0-9]{1,20}-[0-9]{1,20}", entry_id):
        raise ConsoleError(400, "not a purge id")
    status = await desk.status(entry_id)
    if status is None:
        raise ConsoleError(404, f"no purge {entry_id} on the bus")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    _headers(response)
    await response.prepare(request)
    deadline = time.monotonic() + PURGE_WATCH_SECONDS
    last = ""
    while status is not None:
        payload = json.dumps(status.as_json())
        if payload != last:
            await response.write(f"event: status\ndata: {payload}\n\n".encode())
            last = payload
        if status.complete or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)  # polling acknowledgements on the bus under a deadline
        status = await desk.status(entry_id)
    await response.write(b"event: done\ndata: {}\n\n")
    return response


# ---- fleet ---------------------------------------------------------------------------------------------


async def _panel(console: Console) -> str:
    now = time.time()
    markers = [m for m in scaling_markers(console.sampler.scaling) if m.at >= now - HOUR]
    if console.desk is not None:
        markers += [Marker(p.message.issued_at, "purge: " + describe(p.message).removeprefix("purge of ")[:40])
                    for p in console.desk.issued if p.message.issued_at >= now - HOUR]  # fmt: skip
    markers.sort(key=lambda m: m.at)
    points = list(console.sampler.points)
    interval = console.settings.sample_interval
    source = (f"From the edges' own metrics, sampled every {interval:g} s by this console since it started "
              "(up to the last hour).")  # fmt: skip
    if console.history is not None:
        try:
            points = await console.history.points(now)
            source = f"From Prometheus ({console.history.url}): 1-minute rates over the last hour."
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
            source = f"Prometheus did not answer ({exc}); showing the edges' own metrics instead."
    return pages.fleet_panel(console.sampler.edges, fleet_charts(points, markers), source)


async def fleet_page(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    html = pages.fleet_page(session_of(request).csrf, await _panel(console))
    return web.Response(text=html, content_type="text/html")


async def fleet_fragment(request: web.Request) -> web.StreamResponse:
    return web.Response(text=await _panel(console_of(request)), content_type="text/html")


async def fleet_json(request: web.Request) -> web.StreamResponse:
    sampler = console_of(request).sampler
    return web.json_response({
        "edges": [e.__dict__ for e in sampler.edges],
        "points": [p.__dict__ for p in sampler.points],
        "scaling": [e.__dict__ for e in sampler.scaling],
    })  # fmt: skip


# ---- plumbing ------------------------------------------------------------------------------------------


async def home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/assets")


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.Response(text="ok\n")


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    console = app[CONSOLE]
    await console.origin.start()
    sampler = asyncio.create_task(console.sampler.run(), name="edge-sampler")
    yield
    sampler.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sampler
    await console.origin.close()
    if console.desk is not None:
        await console.desk.client.aclose()


def build_console(settings: ConsoleSettings) -> Console:
    view: FleetView
    if settings.state_dir is not None:
        view = LocalFleetView(settings.state_dir)
    else:
        assert settings.edges_dns is not None
        view = DnsFleetView(settings.edges_dns, settings.edge_admin_port)
    desk = None
    if settings.redis_url:
        client = aioredis.Redis.from_url(settings.redis_url, password=settings.redis_password or None,
                                         socket_timeout=5, socket_connect_timeout=5)  # fmt: skip
        desk = PurgeDesk(client, settings.cluster)
    return Console(
        settings=settings,
        sessions=SessionStore(lifetime=settings.session_hours * 3600),
        throttle=SignInThrottle(),
        origin=OriginClient(settings.origin_url, settings.fleet_url, settings.upload_token),
        view=view,
        sampler=EdgeSampler(view, settings.admin_token, settings.sample_interval),
        desk=desk,
        history=PrometheusHistory(settings.prometheus_url, step=settings.prometheus_step)
        if settings.prometheus_url
        else None,
    )


def build_app(console: Console) -> web.Application:
    # Uploads are streamed to the origin (request.content), so client_max_size only bounds forms and JSON.
    app = web.Application(middlewares=[security], client_max_size=256 * 1024)
    app[CONSOLE] = console
    app.cleanup_ctx.append(_lifecycle)
    r = app.router
    r.add_get("/healthz", healthz)
    r.add_get("/login", login_form)
    r.add_post("/login", login)
    r.add_post("/logout", logout)
    r.add_get("/", home)
    r.add_get("/assets", assets_page)
    r.add_get("/assets/list", assets_fragment)
    r.add_get("/assets/object/{key:.+}", object_page)
    r.add_get("/thumb/{key:.+}", thumbnail)
    r.add_get("/api/assets", assets_json)
    r.add_put("/api/assets/{key:.+}", upload)
    r.add_delete("/api/assets/{key:.+}", delete)
    r.add_get("/purges", purges_page)
    r.add_get("/purges/recent", purges_fragment)
    r.add_get("/api/purges", purges_json)
    r.add_post("/api/purges", purge)
    r.add_get("/api/purges/{entry}/events", purge_events)
    r.add_get("/fleet", fleet_page)
    r.add_get("/fleet/panel", fleet_fragment)
    r.add_get("/api/fleet", fleet_json)
    r.add_static("/static", STATIC, follow_symlinks=False)
    return app
