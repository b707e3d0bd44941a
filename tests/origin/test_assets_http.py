"""Serving stored objects over real HTTP: validators, conditional requests, ranges, cache headers.

Runs once per storage backend (filesystem, S3 on moto) through the parametrized ``origin`` fixture.
"""

from __future__ import annotations

import aiohttp
import pytest
from edgefleet_origin.server import RunningOrigin
from origin_testkit import auth, upload

BODY = bytes(range(256)) * 1024  # 256 KiB, bigger than one read chunk


async def test_asset_is_served_with_validators_and_cache_headers(
    origin: RunningOrigin, http: aiohttp.ClientSession
) -> None:
    await upload(http, origin, "docs/manual.pdf", BODY[:1000], headers={"X-Surrogate-Key": "sku-123 cat-shoes"})
    async with http.get(f"{origin.url}/assets/docs/manual.pdf") as response:
        assert response.status == 200
        assert await response.read() == BODY[:1000]
        headers = response.headers
    assert headers["Content-Type"] == "application/pdf"
    assert headers["ETag"].startswith('"') and not headers["ETag"].startswith("W/")
    assert headers["Last-Modified"].endswith("GMT")
    assert headers["Cache-Control"] == "public, max-age=300"
    assert headers["CDN-Cache-Control"] == "max-age=3600"
    assert headers["Surrogate-Key"] == "path:/assets/docs/manual.pdf sku-123 cat-shoes"
    assert "Vary" not in headers


@pytest.mark.parametrize(
    ("upload_headers", "query", "cdn", "browser"),
    [
        ({"X-Cache-Max-Age": "86400"}, "", "max-age=86400", "public, max-age=300"),
        ({"X-Cache-Max-Age": "1h", "X-Browser-Max-Age": "60s"}, "", "max-age=3600", "public, max-age=60"),
        ({}, "?ttl=120", "max-age=120", "public, max-age=120"),
    ],
    ids=["header-seconds", "header-durations", "query-ttl-caps-browser"],
)
async def test_asset_ttl_comes_from_object_metadata(
    origin: RunningOrigin,
    http: aiohttp.ClientSession,
    upload_headers: dict[str, str],
    query: str,
    cdn: str,
    browser: str,
) -> None:
    await upload(http, origin, "css/site.css" + query, b"body{}", headers=upload_headers)
    async with http.get(f"{origin.url}/assets/css/site.css") as response:
        assert response.status == 200
        assert response.headers["CDN-Cache-Control"] == cdn
        assert response.headers["Cache-Control"] == browser


async def test_large_asset_streams_back_byte_identical(origin: RunningOrigin, http: aiohttp.ClientSession) -> None:
    await upload(http, origin, "big.bin", BODY)
    async with http.get(f"{origin.url}/assets/big.bin") as response:
        assert response.status == 200
        assert response.content_length == len(BODY)
        assert await response.read() == BODY


async def test_head_has_get_headers_and_no_body(origin: RunningOrigin, http: aiohttp.ClientSession) -> None:
    await upload(http, origin, "big.bin", BODY)
    async with http.head(f"{origin.url}/assets/big.bin") as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == str(len(BODY))
        assert "ETag" in response.headers
        assert await response.read() == b""


@pytest.mark.parametrize(
    ("conditional", "status"),
    [
        ("If-None-Match", 304),
        ("If-Modified-Since", 304),
        ("If-Match", 200),
    ],
    ids=["if-none-match", "if-modified-since", "if-match"],
)
async def test_conditional_request_with_current_validator(
    origin: RunningOrigin, http: aiohttp.ClientSession, conditional: str, status: int
) -> None:
    await upload(http, origin, "a.txt", b"hello")
    async with http.get(f"{origin.url}/assets/a.txt") as first:
        validators = {"If-None-Match": first.headers["ETag"], "If-Match": first.headers["ETag"],
                      "If-Modified-Since": first.headers["Last-Modified"]}  # fmt: skip
    async with http.get(f"{origin.url}/assets/a.txt", headers={conditional: validators[conditional]}) as response:
        assert response.status == status
        assert response.headers["ETag"] == validators["If-None-Match"]
        assert "Surrogate-Key" in response.headers
        assert await response.read() == (b"" if status == 304 else b"hello")


async def test_replaced_object_gets_a_new_etag_and_fails_if_match(
    origin: RunningOrigin, http: aiohttp.ClientSession
) -> None:
    await upload(http, origin, "a.txt", b"old")
    async with http.get(f"{origin.url}/assets/a.txt") as first:
        old_etag = first.headers["ETag"]
    await upload(http, origin, "a.txt", b"new content")
    async with http.get(f"{origin.url}/assets/a.txt", headers={"If-None-Match": old_etag}) as response:
        assert response.status == 200
        assert await response.read() == b"new content"
        assert response.headers["ETag"] != old_etag
    async with http.get(f"{origin.url}/assets/a.txt", headers={"If-Match": old_etag}) as response:
        assert response.status == 412


@pytest.mark.parametrize(
    ("range_header", "content_range", "expected"),
    [
        ("bytes=0-9", "bytes 0-9/1000", slice(0, 10)),
        ("bytes=990-", "bytes 990-999/1000", slice(990, 1000)),
        ("bytes=-5", "bytes 995-999/1000", slice(995, 1000)),
        ("bytes=500-5000", "bytes 500-999/1000", slice(500, 1000)),
    ],
    ids=["first-ten", "open-ended", "suffix", "past-end-clamped"],
)
async def test_range_request_gets_partial_content(
    origin: RunningOrigin, http: aiohttp.ClientSession, range_header: str, content_range: str, expected: slice
) -> None:
    body = BODY[:1000]
    await upload(http, origin, "r.bin", body)
    async with http.get(f"{origin.url}/assets/r.bin", headers={"Range": range_header}) as response:
        assert response.status == 206
        assert response.headers["Content-Range"] == content_range
        assert await response.read() == body[expected]


async def test_if_range_with_stale_etag_gets_whole_object(origin: RunningOrigin, http: aiohttp.ClientSession) -> None:
    await upload(http, origin, "r.bin", BODY[:100])
    headers = {"Range": "bytes=0-9", "If-Range": '"not-the-current-etag"'}
    async with http.get(f"{origin.url}/assets/r.bin", headers=headers) as response:
        assert response.status == 200
        assert len(await response.read()) == 100


async def test_missing_object_is_404(origin: RunningOrigin, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{origin.url}/assets/nothing/here.jpg") as response:
        assert response.status == 404
        assert "nothing/here.jpg" in (await response.json())["error"]


async def test_health_ready_and_metrics_endpoints_answer(origin: RunningOrigin, http: aiohttp.ClientSession) -> None:
    await upload(http, origin, "a.txt", b"x")
    async with http.get(f"{origin.url}/assets/a.txt") as response:
        await response.read()
    async with http.get(f"{origin.url}/healthz") as health, http.get(f"{origin.url}/readyz") as ready:
        assert (health.status, ready.status) == (200, 200)
    async with http.get(f"{origin.url}/metrics") as response:
        text = await response.text()
    assert 'edgefleet_origin_requests_total{code="200",method="GET"}' in text
    assert "edgefleet_origin_request_duration_seconds_bucket" in text
    assert "edgefleet_origin_bytes_served_total" in text


async def test_listing_returns_objects_under_prefix(origin: RunningOrigin, http: aiohttp.ClientSession) -> None:
    for key in ("p/1.txt", "p/2.txt", "q/3.txt"):
        await upload(http, origin, key, b"x")
    async with http.get(f"{origin.url}/api/files?prefix=p/", headers=auth()) as r:
        listing = await r.json()
    assert [o["key"] for o in listing["objects"]] == ["p/1.txt", "p/2.txt"]
    assert listing["truncated"] is False


async def test_delete_removes_object(origin: RunningOrigin, http: aiohttp.ClientSession) -> None:
    await upload(http, origin, "gone.txt", b"x")
    async with http.delete(f"{origin.url}/api/files/gone.txt", headers=auth()) as r:
        assert r.status == 200
    async with http.get(f"{origin.url}/assets/gone.txt") as response:
        assert response.status == 404
