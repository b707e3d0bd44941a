"""Bad input gets a clear 4xx and stores nothing: traversal, tokens, oversize bodies, ranges, widths.

Runs over both storage backends. "Nothing stored" is checked through the listing API, which sees the
whole bucket or directory (the filesystem test also looks at the directory itself).
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import aiohttp
import pytest
from edgefleet_origin.server import RunningOrigin
from edgefleet_origin.settings import FileLocation
from origin_testkit import TOKEN, auth, jpeg_bytes, upload


async def stored_keys(http: aiohttp.ClientSession, origin: RunningOrigin) -> list[str]:
    async with http.get(f"{origin.url}/api/files", headers=auth()) as response:
        assert response.status == 200
        return [o["key"] for o in (await response.json())["objects"]]


async def raw_request(origin: RunningOrigin, request_line: str, headers: dict[str, str], body: bytes = b"") -> int:
    """Send a request exactly as written (clients normalise '..' away) and return the status code."""
    return await asyncio.to_thread(_raw_request, origin, request_line, headers, body)


def _raw_request(origin: RunningOrigin, request_line: str, headers: dict[str, str], body: bytes) -> int:
    host, port = origin.url.removeprefix("http://").split(":")
    head = f"{request_line}\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(head.encode() + body)
        status_line = conn.makefile("rb").readline().decode()
    return int(status_line.split()[1])


@pytest.mark.parametrize(
    "path",
    [
        "/api/files/../escape.txt",
        "/api/files/a/../../escape.txt",
        "/api/files/%2e%2e/escape.txt",
        "/api/files/a/%2e%2e%2f%2e%2e%2fescape.txt",
        "/api/files/%2Fetc%2Fescape.txt",
        "/api/files/a%5C..%5Cescape.txt",
        "/api/files/a%00.txt",
        "/api/files/.meta/x.json",
        "/api/files/a//b.txt",
        "/api/files/a%20b.txt",
        "/api/files/" + "k" * 200,
    ],
    ids=[
        "dotdot", "nested-dotdot", "encoded-dotdot", "encoded-slashes", "absolute", "backslash", "nul",
        "hidden-segment", "empty-segment", "space", "too-long",
    ],
)  # fmt: skip
async def test_upload_with_bad_key_is_rejected_and_stores_nothing(
    origin: RunningOrigin, http: aiohttp.ClientSession, tmp_path: Path, path: str
) -> None:
    status = await raw_request(origin, f"PUT {path} HTTP/1.1", auth(), b"payload")
    assert status in {400, 404}
    assert await stored_keys(http, origin) == []
    assert not (tmp_path / "escape.txt").exists()
    if isinstance(origin.context.settings.storage, FileLocation):
        files = [p for p in origin.context.settings.storage.root.rglob("*") if p.is_file()]
        assert files == []


@pytest.mark.parametrize(
    "path",
    ["/assets/../conftest.py", "/assets/%2e%2e/%2e%2e/etc/passwd", "/assets/.meta/a.json", "/assets/a%00"],
    ids=["dotdot", "encoded-dotdot", "sidecar", "nul"],
)
async def test_asset_path_traversal_is_rejected(origin: RunningOrigin, path: str) -> None:
    assert await raw_request(origin, f"GET {path} HTTP/1.1", {}) in {400, 404}


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer wrong"}, 403), ({"Authorization": f"Basic {TOKEN}"}, 401)],
    ids=["missing", "wrong", "wrong-scheme"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "/api/files/a.txt"), ("DELETE", "/api/files/a.txt"), ("GET", "/api/files"),
     ("GET", "/api/files/a.txt/upload-url"), ("POST", "/api/events/minio")],
    ids=["put", "delete", "list", "upload-url", "webhook"],
)  # fmt: skip
async def test_api_without_the_right_token_is_refused(
    origin: RunningOrigin, http: aiohttp.ClientSession, headers: dict[str, str], status: int, method: str, path: str
) -> None:
    async with http.request(method, f"{origin.url}{path}", headers=headers, data=b"{}") as response:
        assert response.status == status
        assert "error" in await response.json()
    assert await stored_keys(http, origin) == []


async def test_upload_api_is_disabled_without_a_configured_token(origin_factory, http: aiohttp.ClientSession) -> None:  # type: ignore[no-untyped-def]
    async with origin_factory(upload_token=None, webhook_token=None) as origin:
        async with http.put(f"{origin.url}/api/files/a.txt", data=b"x", headers=auth()) as response:
            assert response.status == 403
            assert "disabled" in (await response.json())["error"]
        async with http.get(f"{origin.url}/assets/a.txt") as response:
            assert response.status == 404


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_oversize_body_is_413_and_keeps_the_old_object(
    origin: RunningOrigin, http: aiohttp.ClientSession, chunked: bool
) -> None:
    await upload(http, origin, "a.bin", b"original")
    too_big = b"x" * (origin.context.settings.max_upload_size + 1)

    async def stream() -> object:
        for start in range(0, len(too_big), 64 * 1024):
            yield too_big[start : start + 64 * 1024]

    body = stream() if chunked else too_big
    async with http.put(f"{origin.url}/api/files/a.bin", data=body, headers=auth()) as response:
        assert response.status == 413
    async with http.get(f"{origin.url}/assets/a.bin") as response:
        assert await response.read() == b"original"
    assert await stored_keys(http, origin) == ["a.bin"]


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("X-Cache-Max-Age", "forever"),
        ("X-Cache-Max-Age", "400d"),
        ("X-Surrogate-Key", "bad:tag"),
        ("X-Surrogate-Key", "a/b"),
    ],
    ids=["bad-ttl", "ttl-over-a-year", "tag-with-colon", "tag-with-slash"],
)
async def test_upload_with_bad_metadata_is_rejected(
    origin: RunningOrigin, http: aiohttp.ClientSession, header: str, reason: str
) -> None:
    async with http.put(f"{origin.url}/api/files/a.txt", data=b"x", headers=auth() | {header: reason}) as response:
        assert response.status == 400
    assert await stored_keys(http, origin) == []


@pytest.mark.parametrize(
    "range_header",
    ["bytes=abc", "bytes=5-2", "bytes=", "bytes=1000-", "bytes=-"],
    ids=["letters", "reversed", "empty", "past-end", "dash-only"],
)
async def test_bad_range_is_416_with_the_size(
    origin: RunningOrigin, http: aiohttp.ClientSession, range_header: str
) -> None:
    await upload(http, origin, "r.bin", b"x" * 100)
    async with http.get(f"{origin.url}/assets/r.bin", headers={"Range": range_header}) as response:
        assert response.status == 416
        assert response.headers["Content-Range"] == "bytes */100"


@pytest.mark.parametrize(
    "query",
    ["?w=abc", "?w=0", "?w=-5", "?w=99999", "?w=1.5", "?format=gif", "?format=../../x"],
    ids=["letters", "zero", "negative", "huge", "fraction", "unknown-format", "format-traversal"],
)
async def test_bad_variant_parameters_are_400(origin: RunningOrigin, http: aiohttp.ClientSession, query: str) -> None:
    await upload(http, origin, "p/shoe.jpg", jpeg_bytes(400, 300))
    async with http.get(f"{origin.url}/assets/p/shoe.jpg{query}") as response:
        assert response.status == 400
        assert (await response.json())["error"]


async def test_variant_parameters_on_non_images_are_400(origin: RunningOrigin, http: aiohttp.ClientSession) -> None:
    await upload(http, origin, "doc.txt", b"text")
    async with http.get(f"{origin.url}/assets/doc.txt?w=320") as response:
        assert response.status == 400


async def test_presigned_url_needs_s3(origin: RunningOrigin, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{origin.url}/api/files/a.jpg/upload-url", headers=auth()) as response:
        body = await response.json()
    if isinstance(origin.context.settings.storage, FileLocation):
        assert response.status == 501
        assert "S3" in body["error"]
        return
    assert response.status == 200
    async with http.put(body["url"], data=jpeg_bytes(100, 100)) as put:
        assert put.status == 200
    async with http.get(f"{origin.url}/assets/a.jpg") as response:
        assert response.status == 200
        # Presigned uploads carry no content type of their own: the key's extension names it.
        assert response.headers["Content-Type"] == "image/jpeg"
