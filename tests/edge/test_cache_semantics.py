"""Shared-cache semantics over real HTTP (RFC 9111, RFC 9213 CDN-Cache-Control, RFC 9211 Cache-Status)."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import time

import aiohttp
import pytest
from aiohttp import web

from tests.edge.conftest import EdgeUnderTest

LONG_AGO = email.utils.formatdate(time.time() - 10 * 86400, usegmt=True)


def respond(body: bytes = b"hello", status: int = 200, **headers: str) -> web.Response:
    return web.Response(body=body, status=status, headers={k.replace("_", "-"): v for k, v in headers.items()})


def route(edge: EdgeUnderTest, path: str, **headers: str) -> None:
    edge.origin.routes[path] = lambda request: respond(**headers)  # type: ignore[arg-type]


async def test_fresh_response_is_served_from_cache_with_age_and_cache_status(edge: EdgeUnderTest) -> None:
    route(edge, "/a", Cache_Control="max-age=60", ETag='"v1"')
    first, second = await edge.get("/a"), await edge.get("/a")
    assert first.headers["X-Cache"] == "MISS" and second.headers["X-Cache"] == "HIT"
    assert edge.origin.count("/a") == 1
    assert second.headers["Cache-Status"].startswith("edge-t; hit")
    assert int(second.headers["Age"]) >= 0
    assert "edge-t" in second.headers["Via"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Cache_Control": "no-store"},
        {"Cache_Control": "private, max-age=60"},
        {"Cache_Control": "max-age=60", "Set_Cookie": "session=abc"},
        {"Cache_Control": "max-age=60", "Vary": "*"},
        {},
    ],
    ids=["no-store", "private", "set-cookie", "vary-star", "no-freshness-information"],
)
async def test_response_that_must_not_be_shared_is_never_stored(edge: EdgeUnderTest, headers: dict[str, str]) -> None:
    route(edge, "/p", **headers)
    await edge.get("/p")
    second = await edge.get("/p")
    assert second.headers["X-Cache"] == "BYPASS"
    assert edge.origin.count("/p") == 2


async def test_cdn_cache_control_takes_precedence_for_this_cache(edge: EdgeUnderTest) -> None:
    route(edge, "/c", Cache_Control="no-cache", CDN_Cache_Control="max-age=120")
    await edge.get("/c")
    second = await edge.get("/c")
    assert second.headers["X-Cache"] == "HIT"
    assert second.headers["Cache-Control"] == "no-cache", "the browser's directive passes through untouched"


async def test_surrogate_control_gives_freshness_to_the_cdn_only(edge: EdgeUnderTest) -> None:
    route(edge, "/s", Cache_Control="max-age=0", Surrogate_Control="max-age=120")
    await edge.get("/s")
    assert (await edge.get("/s")).headers["X-Cache"] == "HIT"


async def test_heuristic_freshness_applies_only_with_last_modified(edge: EdgeUnderTest) -> None:
    route(edge, "/h", Last_Modified=LONG_AGO)
    await edge.get("/h")
    assert (await edge.get("/h")).headers["X-Cache"] == "HIT"


async def test_authorization_requests_are_not_served_from_the_shared_cache(edge: EdgeUnderTest) -> None:
    route(edge, "/me", Cache_Control="max-age=60")
    await edge.get("/me")
    personal = await edge.get("/me", Authorization="Bearer alice")
    assert personal.headers["X-Cache"] != "HIT"


async def test_authorization_requests_may_share_a_public_response(edge: EdgeUnderTest) -> None:
    route(edge, "/pub", Cache_Control="public, max-age=60")
    await edge.get("/pub")
    assert (await edge.get("/pub", Authorization="Bearer alice")).headers["X-Cache"] == "HIT"


async def test_vary_accept_is_normalised_to_the_image_format_class(edge: EdgeUnderTest) -> None:
    def negotiate(request: web.Request) -> web.Response:
        kind = "avif" if "image/avif" in request.headers.get("Accept", "") else "jpeg"
        return respond(kind.encode(), Cache_Control="max-age=60", Vary="Accept", Content_Type=f"image/{kind}")

    edge.origin.routes["/img"] = negotiate
    chrome = "image/avif,image/webp,image/apng,image/*,*/*;q=0.8"
    other_chrome = "image/avif,image/webp,*/*"
    old = "image/jpeg,*/*;q=0.5"
    assert (await edge.get("/img", Accept=chrome)).headers["X-Cache"] == "MISS"
    hit = await edge.get("/img", Accept=other_chrome)
    assert hit.headers["X-Cache"] == "HIT" and await hit.read() == b"avif"
    jpeg = await edge.get("/img", Accept=old)
    assert jpeg.headers["X-Cache"] == "MISS" and await jpeg.read() == b"jpeg"
    assert edge.origin.count("/img") == 2


async def test_tracking_parameters_do_not_split_the_cache(edge: EdgeUnderTest) -> None:
    route(edge, "/q", Cache_Control="max-age=60")
    await edge.get("/q?w=320&utm_source=newsletter")
    assert (await edge.get("/q?w=320")).headers["X-Cache"] == "HIT"


async def test_unsafe_method_passes_through_and_invalidates_the_url(edge: EdgeUnderTest) -> None:
    route(edge, "/cart", Cache_Control="max-age=60")
    await edge.get("/cart")
    posted = await edge.get("/cart", method="POST")
    assert posted.headers["X-Cache"] == "BYPASS"
    assert edge.origin.count("/cart", "POST") == 1
    assert (await edge.get("/cart")).headers["X-Cache"] == "MISS"


async def test_no_cache_response_is_revalidated_and_304_updates_headers(edge: EdgeUnderTest) -> None:
    versions = iter(["A", "B"])

    def conditional(request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") == '"v1"':
            return web.Response(
                status=304, headers={"ETag": '"v1"', "Cache-Control": "no-cache", "X-Version": next(versions)}
            )
        return respond(b"body", Cache_Control="no-cache", ETag='"v1"', X_Version="0")

    edge.origin.routes["/rv"] = conditional
    await edge.get("/rv")
    revalidated = await edge.get("/rv")
    assert revalidated.headers["X-Cache"] == "REVALIDATED"
    assert await revalidated.read() == b"body"
    assert revalidated.headers["X-Version"] == "A", "the 304's headers replace the stored ones"


async def test_client_conditional_request_gets_304_from_cache(edge: EdgeUnderTest) -> None:
    route(edge, "/etag", Cache_Control="max-age=60", ETag='"abc"', Last_Modified=LONG_AGO)
    await edge.get("/etag")
    assert (await edge.get("/etag", If_None_Match='"abc"')).status == 304
    assert (await edge.get("/etag", If_Modified_Since=email.utils.formatdate(usegmt=True))).status == 304
    assert (await edge.get("/etag", If_None_Match='"other"')).status == 200
    assert edge.origin.count("/etag") == 1


async def test_ranges_are_served_from_the_stored_object(edge: EdgeUnderTest) -> None:
    edge.origin.routes["/r"] = lambda request: respond(b"0123456789", Cache_Control="max-age=60", ETag='"r1"')
    await edge.get("/r")
    single = await edge.get("/r", Range="bytes=2-5")
    assert single.status == 206 and await single.read() == b"2345"
    assert single.headers["Content-Range"] == "bytes 2-5/10"
    suffix = await edge.get("/r", Range="bytes=-3")
    assert await suffix.read() == b"789"
    near = await edge.get("/r", Range="bytes=0-1,8-9")
    assert near.headers["Content-Range"] == "bytes 0-9/10", "parts closer than a part header are sent as one"
    edge.origin.routes["/long"] = lambda request: respond(b"x" * 500 + b"yz" + b"x" * 498, Cache_Control="max-age=60")
    await edge.get("/long")
    multi = await edge.get("/long", Range="bytes=0-1,500-501")
    assert multi.status == 206 and multi.headers["Content-Type"].startswith("multipart/byteranges")
    body = await multi.read()
    assert b"Content-Range: bytes 0-1/1000\r\n\r\nxx" in body and b"Content-Range: bytes 500-501/1000\r\n\r\nyz" in body
    assert (await edge.get("/r", Range="bytes=50-60")).status == 416
    stale_validator = await edge.get("/r", Range="bytes=0-1", If_Range='"old"')
    assert stale_validator.status == 200, "If-Range mismatch sends the whole object"
    assert edge.origin.count("/r") == 1 and edge.origin.count("/long") == 1


async def test_head_is_answered_from_a_stored_get(edge: EdgeUnderTest) -> None:
    route(edge, "/head", Cache_Control="max-age=60")
    await edge.get("/head")
    head = await edge.get("/head", method="HEAD")
    assert head.status == 200 and head.headers["X-Cache"] == "HIT"
    assert edge.origin.count("/head", "HEAD") == 0


async def test_hop_by_hop_and_connection_listed_headers_are_removed(edge: EdgeUnderTest) -> None:
    route(edge, "/hop", Cache_Control="max-age=60", Connection="X-Internal", X_Internal="secret", Keep_Alive="5")
    response = await edge.get("/hop")
    assert "X-Internal" not in response.headers and "Keep-Alive" not in response.headers


async def test_stale_while_revalidate_serves_stale_and_refreshes_once(edge: EdgeUnderTest) -> None:
    route(edge, "/swr", Cache_Control="max-age=0, stale-while-revalidate=60", ETag='"s"')
    await edge.get("/swr")
    results = await asyncio.gather(*(edge.get("/swr") for _ in range(5)))
    assert {r.headers["X-Cache"] for r in results} <= {"STALE", "REVALIDATED", "EXPIRED", "MISS"}
    assert "STALE" in {r.headers["X-Cache"] for r in results}
    deadline = time.monotonic() + 10
    while edge.origin.count("/swr") < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert edge.origin.count("/swr") == 2, "one background refresh, however many stale hits"


async def test_stale_if_error_serves_stale_when_the_origin_fails(edge: EdgeUnderTest) -> None:
    route(edge, "/sie", Cache_Control="max-age=0, stale-if-error=300", ETag='"e"')
    await edge.get("/sie")
    edge.origin.routes["/sie"] = lambda request: respond(b"down", status=503)
    served = await edge.get("/sie")
    assert served.status == 200 and served.headers["X-Cache"] == "STALE"


async def test_origin_unreachable_without_anything_stale_is_a_502(edge: EdgeUnderTest) -> None:
    await edge.origin.stop()
    response = await edge.get("/nothing")
    assert response.status == 502
    assert "origin unreachable" in (await response.text())


async def test_concurrent_misses_collapse_into_one_origin_request(edge: EdgeUnderTest) -> None:
    route(edge, "/hot", Cache_Control="max-age=60")
    edge.origin.delay = asyncio.Event()
    pending = [asyncio.create_task(edge.get("/hot")) for _ in range(50)]
    deadline = time.monotonic() + 10
    while edge.origin.count("/hot") < 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    edge.origin.delay.set()
    responses = await asyncio.gather(*pending)
    assert all(r.status == 200 for r in responses)
    assert edge.origin.count("/hot") == 1


async def test_uncacheable_response_is_not_held_back_from_collapsed_followers(edge: EdgeUnderTest) -> None:
    route(edge, "/private", Cache_Control="private")
    edge.origin.delay = asyncio.Event()
    pending = [asyncio.create_task(edge.get("/private")) for _ in range(10)]
    deadline = time.monotonic() + 10
    while edge.origin.count("/private") < 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    edge.origin.delay.set()
    assert all(r.status == 200 for r in await asyncio.gather(*pending))


async def test_followers_are_answered_when_the_leaders_client_goes_away(edge: EdgeUnderTest) -> None:
    route(edge, "/left", Cache_Control="max-age=60")
    edge.origin.delay = asyncio.Event()
    leader = asyncio.create_task(edge.get("/left"))
    deadline = time.monotonic() + 10
    while edge.origin.count("/left") < 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    follower = asyncio.create_task(edge.get("/left"))
    proxy = edge.edge._proxy
    assert proxy is not None
    while not any(flight.waiters for flight in proxy._inflight.values()) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    leader.cancel()  # the leader's client disconnects while the origin has not answered yet
    with contextlib.suppress(asyncio.CancelledError):
        await leader
    while edge.origin.count("/left") < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    edge.origin.delay.set()
    assert (await asyncio.wait_for(follower, timeout=10)).status == 200


async def test_absolute_form_target_never_reaches_another_host(edge: EdgeUnderTest) -> None:
    route(edge, "/ssrf", Cache_Control="max-age=60")
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.edge.data_port)
    writer.write(b"GET http://169.254.169.254/ssrf HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\r\n")
    await writer.drain()
    raw = await reader.read()
    writer.close()
    assert raw.startswith(b"HTTP/1.1 200")
    assert edge.origin.count("/ssrf") == 1, "the configured origin answered, nothing else was contacted"


async def test_malformed_request_gets_400(edge: EdgeUnderTest) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.edge.data_port)
    writer.write(b"GARBAGE\r\n\r\n")
    await writer.drain()
    raw = await reader.read()
    writer.close()
    assert raw.startswith(b"HTTP/1.") and b" 400 " in raw.split(b"\r\n", 1)[0]


async def test_admin_purge_needs_the_token_and_evicts(edge: EdgeUnderTest) -> None:
    route(edge, "/assets/x.jpg", Cache_Control="max-age=60", Surrogate_Key="path:/assets/x.jpg sku-9")
    await edge.get("/assets/x.jpg?w=320")
    await edge.get("/assets/x.jpg?w=640")
    async with edge.session.post(edge.admin + "/purge", json={"tags": ["sku-9"]}) as response:
        assert response.status == 401
    async with edge.session.post(edge.admin + "/purge", json={"tags": ["sku-9"]},
                                 headers={"Authorization": "Bearer wrong"}) as response:  # fmt: skip
        assert response.status == 403
    headers = {"Authorization": "Bearer admin-secret"}
    async with edge.session.post(edge.admin + "/purge", json={"tags": ["sku-9"]}, headers=headers) as response:
        assert response.status == 200 and (await response.json())["purged"] == 2
    assert (await edge.get("/assets/x.jpg?w=320")).headers["X-Cache"] == "MISS"
    async with edge.session.post(edge.admin + "/purge", json={"tags": ["bad tag!"]}, headers=headers) as response:
        assert response.status == 400


async def test_soft_purge_marks_stale_and_the_next_request_revalidates(edge: EdgeUnderTest) -> None:
    def conditional(request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") == '"s1"':
            return web.Response(status=304, headers={"ETag": '"s1"', "Cache-Control": "max-age=60"})
        return respond(b"v", Cache_Control="max-age=60", ETag='"s1"')

    edge.origin.routes["/soft"] = conditional
    await edge.get("/soft")
    async with edge.session.post(edge.admin + "/purge", json={"paths": ["/soft"], "soft": True},
                                 headers={"Authorization": "Bearer admin-secret"}) as response:  # fmt: skip
        assert (await response.json())["soft"] is True
    assert (await edge.get("/soft")).headers["X-Cache"] == "REVALIDATED"
    assert (await edge.get("/soft")).headers["X-Cache"] == "HIT"


async def test_health_and_readiness_are_open_but_metrics_need_the_token(edge: EdgeUnderTest) -> None:
    async with edge.session.get(edge.admin + "/healthz") as response:
        assert response.status == 200
    async with edge.session.get(edge.admin + "/readyz") as response:
        assert response.status == 200
    async with edge.session.get(edge.admin + "/metrics") as response:
        assert response.status == 401
    route(edge, "/m", Cache_Control="max-age=60")
    await edge.get("/m")
    await edge.get("/m")
    async with edge.session.get(edge.admin + "/metrics", headers={"Authorization": "Bearer admin-secret"}) as r:
        text = await r.text()
    assert 'edgefleet_edge_requests_total{cache_status="hit",code="200"} 1.0' in text
    assert 'edgefleet_edge_cache_objects{tier="memory"} 1.0' in text


def _unused(_: aiohttp.ClientResponse) -> None:  # keeps the import for type hints in helpers
    return None
