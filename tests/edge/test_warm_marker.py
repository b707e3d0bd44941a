"""The fleet's own warm requests are stored on their first request; nobody else can claim to be one.

An upload's prewarm exists to put the object on its owner before shoppers ask. Under the default admission a
large object waits for its second request, so a prewarm that is not trusted warms nothing. The marker is an HMAC of
the target under the fleet's admin token (``edgefleet.warm_marker``): a client cannot forge it, and a marker for one
target does not admit another.
"""

from __future__ import annotations

import pytest
from aiohttp import web

from edgefleet.warm_marker import HEADER, warm_marker
from tests.edge.conftest import EdgeUnderTest, OriginStub

ADMIN_TOKEN = "admin-secret"  # the edge fixture's --admin-token
LARGE = b"L" * 100_000  # far above the default policy's "large" threshold for the fixture's 8 MiB memory tier


def serve(origin: OriginStub, path: str) -> None:
    origin.routes[path] = lambda request: web.Response(body=LARGE, headers={"Cache-Control": "max-age=300"})


async def test_a_trusted_warm_request_stores_a_large_object_on_its_first_request(edge: EdgeUnderTest) -> None:
    serve(edge.origin, "/large.jpg")
    warm = await edge.get("/large.jpg", **{HEADER: warm_marker(ADMIN_TOKEN, "/large.jpg")})
    assert warm.headers["Cache-Status"] == "edge-t; fwd=miss; stored"
    shopper = await edge.get("/large.jpg")
    assert shopper.headers["X-Cache"] == "HIT", "the shopper's first request is served from the prewarm"
    assert edge.origin.count("/large.jpg") == 1
    assert HEADER not in edge.origin.requests[0].headers, "the marker is for the edge, never sent to the origin"


@pytest.mark.parametrize(
    "marker",
    [warm_marker("guessed-token", "/a.jpg"), warm_marker(ADMIN_TOKEN, "/other.jpg"), "", "not-hex"],
    ids=["forged", "borrowed-from-another-target", "empty", "garbage"],
)
async def test_an_untrusted_marker_gets_the_ordinary_admission(edge: EdgeUnderTest, marker: str) -> None:
    serve(edge.origin, "/a.jpg")
    first = await edge.get("/a.jpg", **{HEADER: marker})
    assert first.headers["Cache-Status"] == "edge-t; fwd=miss", "declined, as any large object's first request is"
    assert edge.edge.store.stats.declined["memory"] == 1
    second = await edge.get("/a.jpg")
    assert second.headers["Cache-Status"] == "edge-t; fwd=miss; stored"
