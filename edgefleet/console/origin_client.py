"""The console's adapter to the origin's upload API and to the fleet (for thumbnails and cache checks).

The upload token stays here: browsers talk to the console with their session, the console talks to the
origin with the token. Object metadata (type, tags, cache headers) comes from a HEAD of the asset.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

KEY = re.compile(r"^(?!/)(?!.*//)(?!.*(^|/)\.)[A-Za-z0-9._/-]{1,115}(?<!/)$")
"""The origin's key rules (edgefleet_origin.keys), checked early for a clearer message; the origin decides."""

ALLOWED_TYPES = {
    "image/jpeg", "image/png", "image/webp", "image/avif", "image/gif",
    "text/css", "text/javascript", "application/javascript", "font/woff", "font/woff2", "application/json",
}  # fmt: skip
"""What shop teams upload: images and static assets. SVG is left out on purpose: it can carry scripts."""


class OriginProblem(Exception):
    """The origin or fleet refused or failed; ``status`` and ``reason`` go to the browser as they are."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class ObjectDetails:
    key: str
    size: int | None
    content_type: str
    etag: str
    last_modified: str
    cache_control: str
    cdn_cache_control: str
    tags: tuple[str, ...]


def tags_of(surrogate_key: str) -> tuple[str, ...]:
    """The object's own tags: the Surrogate-Key header without the derived ``path:`` key."""
    return tuple(t for t in surrogate_key.split() if ":" not in t)


class OriginClient:
    def __init__(self, origin_url: str, fleet_url: str, upload_token: str) -> None:
        self.origin_url = origin_url
        self.fleet_url = fleet_url
        self._auth = {"Authorization": f"Bearer {upload_token}"}
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300, sock_connect=5))

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    @property
    def _http(self) -> aiohttp.ClientSession:
        assert self.session is not None, "OriginClient.start() was not awaited"
        return self.session

    async def _error(self, response: aiohttp.ClientResponse) -> OriginProblem:
        try:
            body = await response.json(content_type=None)
            reason = str(body.get("error") or body)
        except (ValueError, aiohttp.ContentTypeError):
            reason = (await response.text())[:200] or response.reason or "no reason given"
        return OriginProblem(response.status, reason)

    async def list_objects(self, prefix: str, limit: int) -> tuple[list[dict[str, Any]], bool]:
        try:
            async with self._http.get(
                f"{self.origin_url}/api/files", params={"prefix": prefix, "limit": str(limit)}, headers=self._auth
            ) as response:
                if response.status != 200:
                    raise await self._error(response)
                body = await response.json()
        except aiohttp.ClientError as exc:
            raise OriginProblem(502, f"the origin did not answer: {exc}") from exc
        return list(body["objects"]), bool(body["truncated"])

    async def details(self, key: str) -> ObjectDetails | None:
        try:
            async with self._http.head(f"{self.origin_url}/assets/{key}") as response:
                if response.status == 404:
                    return None
                if response.status != 200:
                    raise OriginProblem(response.status, f"the origin answered {response.status} for {key}")
                h = response.headers
                return ObjectDetails(
                    key=key,
                    size=int(h["Content-Length"]) if h.get("Content-Length", "").isdigit() else None,
                    content_type=h.get("Content-Type", ""),
                    etag=h.get("ETag", ""),
                    last_modified=h.get("Last-Modified", ""),
                    cache_control=h.get("Cache-Control", ""),
                    cdn_cache_control=h.get("CDN-Cache-Control", ""),
                    tags=tags_of(h.get("Surrogate-Key", "")),
                )
        except aiohttp.ClientError as exc:
            raise OriginProblem(502, f"the origin did not answer: {exc}") from exc

    async def details_many(self, keys: list[str], concurrency: int = 8) -> dict[str, ObjectDetails]:
        gate = asyncio.Semaphore(concurrency)

        async def one(key: str) -> tuple[str, ObjectDetails | None]:
            async with gate:
                try:
                    return key, await self.details(key)
                except OriginProblem:
                    return key, None

        pairs = await asyncio.gather(*(one(k) for k in keys))
        return {k: d for k, d in pairs if d is not None}

    async def put(self, key: str, request: web.Request, content_type: str, tags: str) -> tuple[int, dict[str, Any]]:
        headers = {**self._auth, "Content-Type": content_type}
        if request.content_length is not None:
            headers["Content-Length"] = str(request.content_length)
        if tags:
            headers["X-Surrogate-Key"] = tags
        try:
            async with self._http.put(f"{self.origin_url}/api/files/{key}", data=request.content,
                                      headers=headers) as response:  # fmt: skip
                if response.status >= 300:
                    raise await self._error(response)
                return response.status, dict(await response.json())
        except aiohttp.ClientError as exc:
            raise OriginProblem(502, f"the origin did not take the upload: {exc}") from exc

    async def delete(self, key: str) -> None:
        try:
            async with self._http.delete(f"{self.origin_url}/api/files/{key}", headers=self._auth) as response:
                if response.status >= 300:
                    raise await self._error(response)
        except aiohttp.ClientError as exc:
            raise OriginProblem(502, f"the origin did not answer: {exc}") from exc

    async def through_fleet(self, key: str, query: str, accept: str, method: str = "GET") -> aiohttp.ClientResponse:
        """A request for the asset through the fleet, as a shopper's browser would make it (caller releases)."""
        try:
            return await self._http.request(method, f"{self.fleet_url}/assets/{key}{query}",
                                            headers={"Accept": accept or "image/*"})  # fmt: skip
        except aiohttp.ClientError as exc:
            raise OriginProblem(502, f"the fleet did not answer: {exc}") from exc
