"""The upload API (``/api/files``) and the MinIO bucket-notification webhook (``/api/events/minio``).

Every write is staged locally first (``staging.py``), so a body that is too large or cut off leaves the
stored object untouched; then storage is written, cached variants dropped and the change published.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from aiohttp import web

from edgefleet_origin.auth import require_bearer
from edgefleet_origin.caching import asset_path, http_date, path_surrogate_key
from edgefleet_origin.change_events import Change, Notified
from edgefleet_origin.context import OriginContext, context_of
from edgefleet_origin.errors import BadRequest, InvalidKey, ObjectNotFound, PayloadTooLarge
from edgefleet_origin.keys import validate_key, validate_prefix
from edgefleet_origin.minio_events import parse_notification
from edgefleet_origin.objects import (
    GENERIC_CONTENT_TYPES,
    ObjectInfo,
    ObjectMeta,
    guess_content_type,
    parse_tags,
    parse_ttl,
)
from edgefleet_origin.preconditions import quote_etag
from edgefleet_origin.settings import FileLocation
from edgefleet_origin.staging import stage_body
from edgefleet_origin.storage_s3 import S3Location

log = logging.getLogger(__name__)

UPLOAD_API = "upload API"
WEBHOOK = "bucket-notification webhook"
MAX_LIST = 1000
MAX_PRESIGN_SECONDS = 7 * 24 * 3600


def describe(info: ObjectInfo) -> dict[str, object]:
    return {
        "key": info.key,
        "size": info.size,
        "etag": quote_etag(info.etag),
        "last_modified": http_date(info.last_modified),
        "url": asset_path(info.key),
    }


def upload_meta(request: web.Request, key: str) -> ObjectMeta:
    """Metadata from headers (``X-Cache-Max-Age``, ``X-Browser-Max-Age``, ``X-Surrogate-Key``) or the
    query (``ttl``, ``browser_ttl``, ``tags``); headers win."""

    def pick(header: str, param: str) -> str | None:
        return request.headers.get(header, request.query.get(param))

    ttl = pick("X-Cache-Max-Age", "ttl")
    browser_ttl = pick("X-Browser-Max-Age", "browser_ttl")
    tags = pick("X-Surrogate-Key", "tags")
    content_type = request.headers.get("Content-Type", "").strip()
    if content_type.split(";")[0].strip().lower() in GENERIC_CONTENT_TYPES:
        content_type = guess_content_type(key)
    return ObjectMeta(
        content_type=content_type,
        ttl=parse_ttl(ttl, "cache max-age") if ttl is not None else None,
        browser_ttl=parse_ttl(browser_ttl, "browser max-age") if browser_ttl is not None else None,
        tags=parse_tags(tags) if tags is not None else (),
    )


async def put_file(request: web.Request) -> web.Response:
    ctx = context_of(request)
    require_bearer(request, ctx.settings.upload_token, UPLOAD_API)
    key = validate_key(request.match_info["key"])
    meta = upload_meta(request, key)
    limit = ctx.settings.max_upload_size
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"body of {request.content_length} bytes is over the {limit}-byte upload limit")
    staged = await stage_body(request.content.iter_chunked(256 * 1024), ctx.storage.staging_dir, limit)
    try:
        await ctx.storage.stat(key)
        existed = True
    except ObjectNotFound:
        existed = False
    except BaseException:
        staged.discard()
        raise
    info = await ctx.storage.put(key, staged, meta)
    ctx.recent_writes.remember(key, info.etag)
    await ctx.variant_cache.forget(key)
    notified = await ctx.notifier.notify(Change.REPLACED if existed else Change.CREATED, key)
    log.info("%s object %s (%d bytes)", "Replaced" if existed else "Created", key, info.size)
    body = describe(info) | {"replaced": existed} | publication(notified)
    return web.json_response(body, status=200 if existed else 201, headers={"ETag": quote_etag(info.etag)})


async def delete_file(request: web.Request) -> web.Response:
    ctx = context_of(request)
    require_bearer(request, ctx.settings.upload_token, UPLOAD_API)
    key = validate_key(request.match_info["key"])
    await ctx.storage.stat(key)  # 404 for a missing key, on every backend
    await ctx.storage.delete(key)
    ctx.recent_writes.remember(key, None)
    await ctx.variant_cache.forget(key)
    notified = await ctx.notifier.notify(Change.DELETED, key)
    log.info("Deleted object %s", key)
    return web.json_response({"key": key, "deleted": True} | publication(notified))


def publication(notified: Notified) -> dict[str, object]:
    """``event_published``, and when false the ``outbox_entry`` that will be published when the bus returns."""
    body: dict[str, object] = {"event_published": notified.published}
    if notified.outbox_entry is not None:
        body["outbox_entry"] = notified.outbox_entry
    return body


async def outbox(request: web.Request) -> web.Response:
    """Changes stored but not yet published (``edgefleet upload --wait`` polls this)."""
    ctx = context_of(request)
    require_bearer(request, ctx.settings.upload_token, UPLOAD_API)
    backlog = ctx.notifier.backlog()
    pending = await ctx.notifier.pending_entries()
    return web.json_response({"pending": pending, "last_error": backlog.last_error})


async def list_files(request: web.Request) -> web.Response:
    ctx = context_of(request)
    require_bearer(request, ctx.settings.upload_token, UPLOAD_API)
    prefix = validate_prefix(request.query.get("prefix", ""))
    raw_limit = request.query.get("limit", str(MAX_LIST))
    if not raw_limit.isdigit() or not 0 < int(raw_limit) <= MAX_LIST:
        raise BadRequest(f"limit={raw_limit!r} must be 1..{MAX_LIST}")
    found, truncated = await ctx.storage.list_objects(prefix, int(raw_limit))
    return web.json_response({"objects": [describe(i) for i in found], "truncated": truncated})


async def upload_url(request: web.Request) -> web.Response:
    ctx = context_of(request)
    require_bearer(request, ctx.settings.upload_token, UPLOAD_API)
    key = validate_key(request.match_info["key"])
    raw = request.query.get("expires")
    expires = parse_ttl(raw, "expires") if raw is not None else ctx.settings.presign_expiry
    if not 0 < expires <= MAX_PRESIGN_SECONDS:
        raise BadRequest(f"expires must be 1s..7d, not {expires}s")
    url = await ctx.storage.presigned_put_url(key, timedelta(seconds=expires))
    return web.json_response({"key": key, "method": "PUT", "url": url, "expires_in": expires})


async def minio_webhook(request: web.Request) -> web.Response:
    ctx = context_of(request)
    require_bearer(request, ctx.settings.webhook_token, WEBHOOK)
    try:
        document = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"event body is not JSON: {exc}") from None
    handled, published = 0, True
    for event in parse_notification(document):
        if not _our_bucket(ctx, event.bucket):
            continue
        try:
            key = validate_key(event.key)
        except InvalidKey as exc:
            log.warning("Ignored bucket event for unservable key %r: %s", event.key, exc.reason)
            continue
        if ctx.recent_writes.is_echo(key, event.etag):
            log.debug("Skipped bucket event %s for %s: this origin made that change", event.change.value, key)
            continue
        await ctx.variant_cache.forget(key)
        published = (await ctx.notifier.notify(event.change, key)).published and published
        handled += 1
        log.info("Handled bucket event %s for %s (purge key %s)", event.change.value, key, path_surrogate_key(key))
    return web.json_response({"handled": handled, "event_published": published})


def _our_bucket(ctx: OriginContext, bucket: str) -> bool:
    location = ctx.settings.storage
    if isinstance(location, S3Location):
        return bucket == location.bucket
    return isinstance(location, FileLocation)  # a MinIO in front of the same files, for local set-ups
