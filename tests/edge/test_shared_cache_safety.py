"""A shared cache never hands one user's answer to another, and reuses only what RFC 9111 lets it reuse.

Each test here is a defect found by trying the edge from outside (issue #13), over real HTTP on loopback: an
origin stub scripted per path, the edge's one data port, an aiohttp client.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Callable

import pytest
from aiohttp import web
from multidict import CIMultiDict

from tests.edge.conftest import EdgeUnderTest

DEADLINE = 10.0


async def until(probe: Callable[[], bool], what: str) -> None:
    """Wait for a condition (never a fixed sleep), failing with ``what`` after a deadline."""
    deadline = time.monotonic() + DEADLINE
    while not probe():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def lines(*pairs: tuple[str, str], body: bytes = b"hello", status: int = 200) -> web.Response:
    """A response with exactly these field lines, repeated names kept as separate lines."""
    return web.Response(body=body, status=status, headers=CIMultiDict(pairs))


def followers_waiting(edge: EdgeUnderTest) -> int:
    proxy = edge.edge._proxy
    assert proxy is not None
    return sum(len(flight.waiters) for flight in proxy._inflight.values())


def http_date(offset: float = 0.0) -> str:
    return email.utils.formatdate(time.time() + offset, usegmt=True)


# ---- collapsing ------------------------------------------------------------------------------------------------


async def test_collapsed_requests_never_share_a_private_answer(edge: EdgeUnderTest) -> None:
    gate = asyncio.Event()

    async def personal(request: web.Request) -> web.Response:
        user = request.headers.get("Cookie", "")
        await gate.wait()
        return lines(("Cache-Control", "private"), ("Set-Cookie", f"session={user}"), body=f"cart of {user}".encode())

    edge.origin.routes["/cart"] = personal
    users = [f"user{n}" for n in range(5)]
    pending = [asyncio.create_task(edge.get("/cart", Cookie=user)) for user in users]
    await until(lambda: edge.origin.count("/cart") >= 1, "the first request to reach the origin")
    await until(lambda: edge.origin.count("/cart") + followers_waiting(edge) >= 5, "all five requests at the edge")
    gate.set()
    responses = await asyncio.gather(*pending)
    for user, response in zip(users, responses, strict=True):
        assert await response.read() == f"cart of {user}".encode(), "each shopper gets their own cart"
        assert response.headers.getall("Set-Cookie") == [f"session={user}"], "and only their own cookie"
    assert edge.origin.count("/cart") == 5


async def test_a_personal_answer_sends_the_next_burst_straight_to_the_origin(edge: EdgeUnderTest) -> None:
    edge.origin.routes["/account"] = lambda request: lines(("Cache-Control", "private, max-age=60"))
    await edge.get("/account")
    gate = asyncio.Event()

    async def held(request: web.Request) -> web.Response:
        await gate.wait()
        return lines(("Cache-Control", "private, max-age=60"))

    edge.origin.routes["/account"] = held
    pending = [asyncio.create_task(edge.get("/account")) for _ in range(3)]
    # Hit-for-pass: nobody queues behind a leader whose answer will be personal again.
    await until(lambda: edge.origin.count("/account") == 4, "every request of the burst at the origin at once")
    assert followers_waiting(edge) == 0
    gate.set()
    assert all(r.status == 200 for r in await asyncio.gather(*pending))


async def test_a_follower_is_not_given_a_variant_for_other_request_headers(edge: EdgeUnderTest) -> None:
    gate = asyncio.Event()

    async def by_cookie(request: web.Request) -> web.Response:
        user = request.headers.get("Cookie", "")
        await gate.wait()
        return lines(("Cache-Control", "max-age=60"), ("Vary", "Cookie"), body=f"page for {user}".encode())

    edge.origin.routes["/page"] = by_cookie
    alice = asyncio.create_task(edge.get("/page", Cookie="alice"))
    await until(lambda: edge.origin.count("/page") == 1, "alice's request at the origin")
    bob = asyncio.create_task(edge.get("/page", Cookie="bob"))
    await until(lambda: edge.origin.count("/page") + followers_waiting(edge) == 2, "bob's request at the edge")
    gate.set()
    assert await (await alice).read() == b"page for alice"
    assert await (await bob).read() == b"page for bob"


async def test_a_request_after_a_purge_does_not_join_a_fetch_from_before_it(edge: EdgeUnderTest) -> None:
    version = {"current": "v1"}
    gate = asyncio.Event()

    async def changing(request: web.Request) -> web.Response:
        seen = version["current"]
        await gate.wait()
        return lines(("Cache-Control", "max-age=60"), body=seen.encode())

    edge.origin.routes["/price"] = changing
    before = asyncio.create_task(edge.get("/price"))
    await until(lambda: edge.origin.count("/price") == 1, "the first fetch at the origin")
    version["current"] = "v2"  # the shop changes the price, then purges it
    async with edge.session.post(edge.admin + "/purge", json={"paths": ["/price"]},
                                 headers={"Authorization": "Bearer admin-secret"}) as purged:  # fmt: skip
        assert purged.status == 200
    after = asyncio.create_task(edge.get("/price"))
    await until(lambda: edge.origin.count("/price") + followers_waiting(edge) == 2, "the request after the purge")
    gate.set()
    assert await (await before).read() == b"v1"
    assert await (await after).read() == b"v2", "a request made after the purge never gets what it removed"


# ---- every field line counts (RFC 9110 §5.3) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        [("Cache-Control", "max-age=3600"), ("Cache-Control", "private")],
        [("Cache-Control", "max-age=3600"), ("Cache-Control", "no-store")],
        [("CDN-Cache-Control", "max-age=3600"), ("Cache-Control", "max-age=60"), ("Cache-Control", "private")],
        [("Cache-Control", "max-age=60"), ("Vary", "*, Accept")],
        [("Cache-Control", "max-age=60"), ("Vary", "Accept, *")],
        [("Cache-Control", "max-age=60"), ("Vary", ""), ("Vary", "*")],
        [("Cache-Control", "max-age=60"), ("Vary", "Accept-Encoding"), ("Vary", "*")],
    ],
    ids=["cc-private-2nd-line", "cc-no-store-2nd-line", "cdn-cc-plus-private-2nd-line", "vary-star-first",
         "vary-star-last", "vary-empty-line-then-star", "vary-star-2nd-line"],
)  # fmt: skip
async def test_a_restriction_on_any_field_line_is_obeyed(edge: EdgeUnderTest, fields: list[tuple[str, str]]) -> None:
    edge.origin.routes["/r"] = lambda request: lines(*fields)
    await edge.get("/r")
    second = await edge.get("/r")
    assert second.headers["X-Cache"] != "HIT"
    assert edge.origin.count("/r") == 2


async def test_vary_on_a_second_line_keeps_users_apart(edge: EdgeUnderTest) -> None:
    def by_cookie(request: web.Request) -> web.Response:
        user = request.headers.get("Cookie", "")
        return lines(("Cache-Control", "max-age=60"), ("Vary", "Accept-Encoding"), ("Vary", "Cookie"),
                     body=f"page for {user}".encode())  # fmt: skip

    edge.origin.routes["/v"] = by_cookie
    assert await (await edge.get("/v", Cookie="alice")).read() == b"page for alice"
    bob = await edge.get("/v", Cookie="bob")
    assert await bob.read() == b"page for bob"
    again = await edge.get("/v", Cookie="alice")
    assert again.headers["X-Cache"] == "HIT" and await again.read() == b"page for alice"


async def test_a_set_cookie_on_a_304_goes_to_its_requester_only(edge: EdgeUnderTest) -> None:
    def revalidating(request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") == '"p1"':
            extra = [("Set-Cookie", "session=alice")] if "alice" in request.headers.get("Cookie", "") else []
            return lines(("ETag", '"p1"'), ("Cache-Control", "max-age=60"), *extra, body=b"", status=304)
        return lines(("ETag", '"p1"'), ("Cache-Control", "max-age=0"), body=b"product page")

    edge.origin.routes["/product"] = revalidating
    await edge.get("/product")
    alice = await edge.get("/product", Cookie="alice")
    assert alice.headers["X-Cache"] == "REVALIDATED"
    assert alice.headers.getall("Set-Cookie") == ["session=alice"]
    for who in ({"Cookie": "bob"}, {}):
        other = await edge.get("/product", **who)
        assert other.headers["X-Cache"] == "HIT" and await other.read() == b"product page"
        assert "Set-Cookie" not in other.headers, "alice's session is never stored"


# ---- stale content -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cache_control",
    ["max-age=20, must-revalidate", "max-age=20, proxy-revalidate", "s-maxage=20", "no-cache"],
    ids=["must-revalidate", "proxy-revalidate", "s-maxage", "no-cache"],
)
@pytest.mark.parametrize("failure", ["503", "unreachable"])
async def test_grace_never_serves_what_the_origin_said_to_revalidate(
    edge: EdgeUnderTest, cache_control: str, failure: str
) -> None:
    # Age 30 of a 20-second lifetime: stale at once, and within the edge's 60 s grace.
    edge.origin.routes["/rv"] = lambda request: lines(("Cache-Control", cache_control), ("Age", "30"),
                                                      ("ETag", '"e"'))  # fmt: skip
    await edge.get("/rv")
    if failure == "503":
        edge.origin.routes["/rv"] = lambda request: lines(body=b"down", status=503)
    else:
        await edge.origin.stop()
    response = await edge.get("/rv")
    assert response.status >= 500 and response.headers["X-Cache"] != "STALE"


async def test_grace_serves_stale_when_the_response_left_it_to_the_cache(edge: EdgeUnderTest) -> None:
    edge.origin.routes["/ok"] = lambda request: lines(("Cache-Control", "max-age=60"), ("Age", "90"))
    await edge.get("/ok")
    edge.origin.routes["/ok"] = lambda request: lines(body=b"down", status=503)
    response = await edge.get("/ok")
    assert response.status == 200 and response.headers["X-Cache"] == "STALE"
    assert "fwd-status=503" in response.headers["Cache-Status"]


# ---- what is stored -------------------------------------------------------------------------------------------


async def test_a_partial_response_is_never_stored_as_the_whole(edge: EdgeUnderTest) -> None:
    edge.origin.routes["/part"] = lambda request: lines(
        ("Cache-Control", "max-age=60"), ("Content-Range", "bytes 4-9/20"), body=b"456789", status=206
    )
    ranged = await edge.get("/part", Range="bytes=4-9")
    assert ranged.status == 206
    whole = await edge.get("/part")
    assert whole.headers.get("X-Cache") != "HIT"
    inner = await edge.get("/part", Range="bytes=6-8")
    assert inner.headers.get("X-Cache") != "HIT"
    assert edge.origin.count("/part") == 3


async def test_a_5xx_with_explicit_freshness_is_cached(edge: EdgeUnderTest) -> None:
    edge.origin.routes["/maintenance"] = lambda request: lines(("Cache-Control", "max-age=60"), body=b"back soon",
                                                               status=503)  # fmt: skip
    await edge.get("/maintenance")
    second = await edge.get("/maintenance")
    assert second.status == 503 and second.headers["X-Cache"] == "HIT"
    assert edge.origin.count("/maintenance") == 1


@pytest.mark.parametrize(("status", "stored"), [(200, True), (299, False)], ids=["understood-status", "unknown-status"])
async def test_must_understand_stores_only_statuses_the_cache_understands(
    edge: EdgeUnderTest, status: int, stored: bool
) -> None:
    edge.origin.routes["/mu"] = lambda request: lines(("Cache-Control", "must-understand, no-store, max-age=60"),
                                                      status=status)  # fmt: skip
    await edge.get("/mu")
    second = await edge.get("/mu")
    assert (second.headers["X-Cache"] == "HIT") is stored


@pytest.mark.parametrize(
    "expires",
    [
        ["Thu, 01 Jan 50 00:00:00 GMT"],
        ["Thu, 01 Jan 2099 00:00:00 +1000"],
        ["Thu, 01 Jan 2099 00:00:00 UTC"],
        ["Thu, 01-Jan-2099 00:00:00 GMT"],
        ["Thu, 01 Jan 2099 00:00:00 GMT", "Fri, 02 Jan 2099 00:00:00 GMT"],
        ["0"],
    ],
    ids=["two-digit-year", "numeric-zone", "utc", "dashes", "two-lines", "zero"],
)
async def test_an_invalid_expires_means_already_expired(edge: EdgeUnderTest, expires: list[str]) -> None:
    edge.origin.routes["/exp"] = lambda request: lines(*[("Expires", value) for value in expires])
    await edge.get("/exp")
    assert (await edge.get("/exp")).headers["X-Cache"] != "HIT"
    assert edge.origin.count("/exp") == 2


async def test_a_valid_expires_in_the_future_is_fresh(edge: EdgeUnderTest) -> None:
    edge.origin.routes["/exp-ok"] = lambda request: lines(("Expires", http_date(3600)), ("Date", http_date()))
    await edge.get("/exp-ok")
    assert (await edge.get("/exp-ok")).headers["X-Cache"] == "HIT"


async def test_an_invalid_cdn_cache_control_is_ignored_whole(edge: EdgeUnderTest) -> None:
    # RFC 9213 §2.1: not a structured Dictionary (upper-case key), so Cache-Control decides: no-store.
    edge.origin.routes["/sf"] = lambda request: lines(("CDN-Cache-Control", "Max-Age=60"),
                                                      ("Cache-Control", "no-store"))  # fmt: skip
    await edge.get("/sf")
    assert (await edge.get("/sf")).headers["X-Cache"] != "HIT"
    assert edge.origin.count("/sf") == 2


# ---- what a response says about itself ----------------------------------------------------------------------------


async def test_the_origins_age_counts_on_the_miss_and_after(edge: EdgeUnderTest) -> None:
    edge.origin.routes["/aged"] = lambda request: lines(("Cache-Control", "max-age=600"), ("Age", "30"))
    miss = await edge.get("/aged")
    assert miss.headers["X-Cache"] == "MISS" and int(miss.headers["Age"]) >= 30
    hit = await edge.get("/aged")
    assert hit.headers["X-Cache"] == "HIT" and int(hit.headers["Age"]) >= 30


async def test_a_hit_keeps_the_origins_date(edge: EdgeUnderTest) -> None:
    made = http_date(-5)
    edge.origin.routes["/dated"] = lambda request: lines(("Cache-Control", "max-age=600"), ("Date", made))
    await edge.get("/dated")
    plain = await edge.get("/dated")
    general = await edge.get("/dated", If_None_Match='"other"')  # not the recognised request: the general path
    assert plain.headers["X-Cache"] == general.headers["X-Cache"] == "HIT"
    assert plain.headers.getall("Date") == [made] and general.headers.getall("Date") == [made]
    assert int(plain.headers["Age"]) >= 5


async def test_the_hot_path_and_the_general_path_say_the_same_cache_status(edge: EdgeUnderTest) -> None:
    edge.origin.routes["/same"] = lambda request: lines(("Cache-Control", "max-age=600"))
    await edge.get("/same")
    plain = await edge.get("/same")
    general = await edge.get("/same", If_None_Match='"other"')
    for response in (plain, general):
        name, hit, ttl = response.headers["Cache-Status"].split("; ")
        assert (name, hit) == ("edge-t", "hit") and ttl.startswith("ttl=") and 590 <= int(ttl[4:]) <= 600


# ---- methods -------------------------------------------------------------------------------------------------


async def test_an_unknown_method_is_forwarded_and_invalidates_the_url(edge: EdgeUnderTest) -> None:
    edge.origin.routes["/dev"] = lambda request: lines(("Cache-Control", "max-age=600"))
    await edge.get("/dev")
    assert (await edge.get("/dev")).headers["X-Cache"] == "HIT"
    response = await edge.get("/dev", method="M-SEARCH")
    assert response.status == 200 and edge.origin.count("/dev", "M-SEARCH") == 1
    assert (await edge.get("/dev")).headers["X-Cache"] == "MISS", "RFC 9111 §4.4: invalidated"


async def test_connect_and_trace_are_refused(edge: EdgeUnderTest) -> None:
    response = await edge.get("/x", method="TRACE")
    assert response.status == 405 and not edge.origin.requests


async def test_conditional_and_range_fields_are_read_from_every_line(edge: EdgeUnderTest) -> None:
    edge.origin.routes["/cond"] = lambda request: lines(("Cache-Control", "max-age=600"), ("ETag", '"b"'))
    await edge.get("/cond")
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.edge.data_port)
    writer.write(
        b'GET /cond HTTP/1.1\r\nHost: a\r\nIf-None-Match: "a"\r\nIf-None-Match: "b"\r\nConnection: close\r\n\r\n'
    )
    await writer.drain()
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 304"), "the second If-None-Match line names the stored ETag"
    reader, writer = await asyncio.open_connection("127.0.0.1", edge.edge.data_port)
    writer.write(b"GET /cond HTTP/1.1\r\nHost: a\r\nRange: bytes=0-1\r\nRange: bytes=2-3\r\nConnection: close\r\n\r\n")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200"), "two Range lines are not guessed at: the whole object"
