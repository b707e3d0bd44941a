"""``GET``/``HEAD /assets/{key}``: originals and image variants, with validators, ranges and cache headers."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from aiohttp import web

from edgefleet_origin.caching import http_date
from edgefleet_origin.context import OriginContext, context_of
from edgefleet_origin.errors import BadRequest, ObjectChanged, OriginError, StorageError
from edgefleet_origin.keys import validate_key
from edgefleet_origin.objects import ObjectInfo
from edgefleet_origin.preconditions import Outcome, evaluate, quote_etag, range_applies
from edgefleet_origin.ranges import ByteRange, parse_range
from edgefleet_origin.storage import ObjectReader
from edgefleet_origin.variant_cache import SourceFetcher
from edgefleet_origin.variants import VariantSpec, select_variant, source_format

log = logging.getLogger(__name__)

CHUNK = 256 * 1024


# Reading an object that is being replaced sees a new version at most a few times in a row.
ATTEMPTS = 3


async def serve_asset(request: web.Request) -> web.StreamResponse:
    ctx = context_of(request)
    key = validate_key(request.match_info["key"])
    for _ in range(ATTEMPTS - 1):
        try:
            return await _serve(request, ctx, key)
        except ObjectChanged:
            continue  # raised before the response is prepared, so starting over is safe
    return await _serve(request, ctx, key)


async def _serve(request: web.Request, ctx: OriginContext, key: str) -> web.StreamResponse:
    info = await ctx.storage.stat(key)
    spec = _variant_spec(ctx, info, request)
    headers = ctx.cache_policy.headers(info)
    headers["Last-Modified"] = http_date(info.last_modified)
    headers["Accept-Ranges"] = "bytes"
    if spec is not None and spec.negotiated:
        headers["Vary"] = "Accept"
    source = source_format(info.meta.content_type)
    is_original = spec is None or (source is not None and spec.is_original(source))
    if is_original or spec is None:
        etag, content_type = quote_etag(info.etag), info.meta.content_type
    else:
        etag, content_type = quote_etag(f"{info.etag}.{spec.tag()}"), spec.format.content_type
    headers["ETag"] = etag

    outcome = evaluate(request.method, request.headers, etag, info.last_modified)
    if outcome is Outcome.NOT_MODIFIED:
        return web.Response(status=304, headers=headers)
    if outcome is Outcome.PRECONDITION_FAILED:
        raise OriginError("precondition failed", status=412)

    variant_path: Path | None = None
    size = info.size
    if not is_original and spec is not None:
        cached = await ctx.variant_cache.get(info, spec, ctx.storage.local_path(key), _fetcher(ctx))
        variant_path, size = cached.path, cached.size

    byte_range: ByteRange | None = None
    if range_applies(request.headers, etag, info.last_modified):
        byte_range = parse_range(request.headers.get("Range"), size)
    headers["Content-Type"] = content_type
    response = web.StreamResponse(status=206 if byte_range else 200, headers=headers)
    if byte_range is not None:
        response.headers["Content-Range"] = byte_range.content_range(size)
        response.content_length = byte_range.length
    else:
        response.content_length = size
    if request.method == "HEAD":
        await response.prepare(request)
        await response.write_eof()
        return response

    reader = (
        await ctx.storage.open(info, byte_range)
        if variant_path is None
        else await asyncio.to_thread(_open_file, info.key, variant_path, byte_range)
    )
    try:
        await response.prepare(request)
        while chunk := await reader.read(CHUNK):
            await response.write(chunk)
            ctx.metrics.bytes_served.inc(len(chunk))
        await response.write_eof()
    except StorageError as exc:
        # The head is already sent, so no error response is possible: count it, log it, and cut the
        # connection so the client sees a short body against Content-Length, never a "complete" one.
        ctx.metrics.storage_errors.labels(operation=exc.operation).inc()
        log.warning("Aborted %s after a storage failure mid-body: %s", request.path, exc.reason)
        if request.transport is not None:
            request.transport.close()
    finally:
        await reader.close()
    return response


def _variant_spec(ctx: OriginContext, info: ObjectInfo, request: web.Request) -> VariantSpec | None:
    source = source_format(info.meta.content_type)
    if source is None:
        if "w" in request.query or "format" in request.query:
            raise BadRequest(f"w= and format= apply only to images; {info.key!r} is {info.meta.content_type}")
        return None
    return select_variant(ctx.settings.variants, source, request.query, request.headers.get("Accept"))


def _open_file(key: str, path: Path, byte_range: ByteRange | None) -> ObjectReader:
    try:
        raw = path.open("rb")
    except FileNotFoundError:
        raise ObjectChanged(key) from None  # evicted, or dropped because the object changed
    size = os.fstat(raw.fileno()).st_size
    if byte_range is not None:
        raw.seek(byte_range.start)
        size = byte_range.length
    return ObjectReader(raw, size, raw.close)


def _fetcher(ctx: OriginContext) -> SourceFetcher:
    async def fetch(info: ObjectInfo, target: Path) -> None:
        reader = await ctx.storage.open(info, None)
        try:
            with target.open("wb") as out:
                while chunk := await reader.read(CHUNK):
                    await asyncio.to_thread(out.write, chunk)
        finally:
            await reader.close()

    return fetch
