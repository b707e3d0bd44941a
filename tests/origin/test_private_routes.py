"""The origin's metrics and upload/admin API are not reachable through the data path: a real edge in
front of a real origin answers 404 for them, while assets still flow; with ``admin_listen`` they live on
a port of their own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from edgefleet_edge.server import Edge, EdgeSettings
from edgefleet_origin.server import RunningOrigin, running_origin
from edgefleet_origin.settings import OriginSettings
from origin_testkit import auth, jpeg_bytes, upload

PRIVATE = ["/metrics", "/api/files", "/api/outbox", "/api/files/p/a.jpg/upload-url"]


@pytest.fixture
async def edge_in_front(origin: RunningOrigin) -> AsyncIterator[str]:
    edge = Edge(EdgeSettings(
        listen=("127.0.0.1", 0), admin_listen=("127.0.0.1", 0), origin=origin.url, memory=8 * 2**20, disk=0,
        cache_dir=None, name="edge-t", admin_token="admin-secret",
    ))  # fmt: skip
    await edge.start()
    try:
        yield f"http://127.0.0.1:{edge.data_port}"
    finally:
        await edge.stop()


@pytest.mark.parametrize("path", PRIVATE, ids=PRIVATE)
async def test_private_origin_route_is_not_found_through_an_edge(
    origin: RunningOrigin, edge_in_front: str, http: aiohttp.ClientSession, path: str
) -> None:
    await upload(http, origin, "p/a.jpg", jpeg_bytes(40, 30))
    async with http.get(edge_in_front + path, headers=auth()) as response:
        body = await response.read()
    assert response.status == 404, body[:200]
    assert b"edgefleet_origin" not in body and b"p/a.jpg" not in body
    async with http.get(origin.url + path, headers=auth()) as direct:
        assert direct.status != 404, "the origin still serves it to direct callers (Prometheus, the CLI)"


async def test_assets_still_flow_through_the_edge(
    origin: RunningOrigin, edge_in_front: str, http: aiohttp.ClientSession
) -> None:
    body = jpeg_bytes(40, 30)
    await upload(http, origin, "p/a.jpg", body)
    async with http.get(edge_in_front + "/assets/p/a.jpg") as response:
        assert response.status == 200 and await response.read() == body


async def test_admin_listen_moves_metrics_and_the_api_to_their_own_port(
    base_settings: OriginSettings, http: aiohttp.ClientSession
) -> None:
    settings: Any = replace(base_settings, admin_listen=("127.0.0.1", 0))
    async with running_origin(settings) as origin:
        assert origin.admin_url != origin.url
        async with http.put(f"{origin.url}/api/files/p/a.jpg", data=b"x", headers=auth()) as response:
            assert response.status in {404, 405}
        async with http.put(f"{origin.admin_url}/api/files/p/a.jpg", data=b"x", headers=auth()) as response:
            assert response.status == 201
        async with http.get(f"{origin.url}/metrics") as response:
            assert response.status == 404
        async with http.get(f"{origin.admin_url}/metrics") as response:
            assert response.status == 200 and b"edgefleet_origin_requests_total" in await response.read()
        async with http.get(f"{origin.url}/assets/p/a.jpg") as response:
            assert response.status == 200 and await response.read() == b"x"
        async with http.get(f"{origin.admin_url}/assets/p/a.jpg") as response:
            assert response.status == 404


async def test_upload_and_delete_through_an_edge_are_refused_even_with_the_token(
    origin: RunningOrigin, edge_in_front: str, http: aiohttp.ClientSession
) -> None:
    await upload(http, origin, "p/a.jpg", jpeg_bytes(40, 30))
    async with http.put(edge_in_front + "/api/files/p/b.jpg", data=b"x", headers=auth()) as response:
        assert response.status == 404
    async with http.delete(edge_in_front + "/api/files/p/a.jpg", headers=auth()) as response:
        assert response.status == 404
    async with http.get(origin.url + "/api/files", headers=auth()) as response:
        assert [o["key"] for o in (await response.json())["objects"]] == ["p/a.jpg"]
