"""Storage that cannot be reached: readiness says so, requests get 503 with a reason, errors are counted."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from edgefleet_origin.server import running_origin
from edgefleet_origin.settings import FileLocation, OriginSettings
from edgefleet_origin.storage_s3 import S3Location
from origin_testkit import TOKEN, auth

from edgefleet.embedded_redis import free_port


@pytest.mark.parametrize(
    ("where", "asset_status", "operations"),
    [
        # A HEAD response has no error body, so S3 cannot tell a missing bucket from a missing key: the
        # read is a 404, and readiness is what reports the missing bucket.
        ("missing-bucket", 404, ("check", "write")),
        ("nothing-listening", 503, ("check", "stat")),
    ],
    ids=["missing-bucket", "nothing-listening"],
)
async def test_unreachable_s3_is_not_ready_and_answers_503(
    s3_endpoint: str,
    tmp_path: Path,
    http: aiohttp.ClientSession,
    where: str,
    asset_status: int,
    operations: tuple[str, ...],
) -> None:
    endpoint = s3_endpoint if where == "missing-bucket" else f"127.0.0.1:{free_port()}"
    location = S3Location("no-such-bucket", endpoint, False, "us-east-1", "ak", "sk")
    settings = OriginSettings(
        storage=location, listen=("127.0.0.1", 0), upload_token="t", variant_cache_dir=tmp_path, image_workers=1
    )
    async with running_origin(settings) as origin:
        async with http.get(f"{origin.url}/readyz") as response:
            assert response.status == 503
            assert (await response.json())["error"]
        async with http.get(f"{origin.url}/healthz") as response:
            assert response.status == 200
        async with http.get(f"{origin.url}/assets/a.jpg") as response:
            assert response.status == asset_status
        async with http.put(f"{origin.url}/api/files/a.txt", data=b"x", headers=auth("t")) as response:
            assert response.status == 503
        registry = origin.context.metrics.registry
        for operation in operations:
            count = registry.get_sample_value("edgefleet_origin_storage_errors_total", {"operation": operation})
            assert count is not None and count >= 1
    assert list(tmp_path.glob(".staging/*")) == []


async def test_filesystem_storage_refuses_a_key_under_an_object(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    # S3 keys are flat, so only the filesystem backend has this conflict: "a" is a file, so "a/b" cannot be.
    settings = OriginSettings(
        storage=FileLocation(tmp_path / "objects"),
        listen=("127.0.0.1", 0),
        upload_token=TOKEN,
        variant_cache_dir=tmp_path / "variants",
        image_workers=1,
    )
    async with running_origin(settings) as origin:
        async with http.put(f"{origin.url}/api/files/a", data=b"x", headers=auth()) as response:
            assert response.status == 201
        async with http.put(f"{origin.url}/api/files/a/b", data=b"y", headers=auth()) as response:
            assert response.status == 409
        async with http.get(f"{origin.url}/assets/a") as response:
            assert await response.read() == b"x"


def test_settings_repr_hides_secrets() -> None:
    location = S3Location("b", "e:1", False, "r", "access-key-value", "secret-key-value")
    settings = OriginSettings(storage=location, upload_token="token-value", redis_url="redis://:pw@h/0")
    text = repr(replace(settings))
    for secret in ("access-key-value", "secret-key-value", "token-value", "pw@"):
        assert secret not in text


async def test_presigned_url_is_signed_for_the_public_address(
    s3_endpoint: str, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    location = S3Location("shop", s3_endpoint, False, "us-east-1", "ak", "sk", "https://upload.shop.example")
    settings = OriginSettings(
        storage=location, listen=("127.0.0.1", 0), upload_token=TOKEN, variant_cache_dir=tmp_path, image_workers=1
    )
    async with running_origin(settings) as origin:
        url = f"{origin.url}/api/files/p/a.jpg/upload-url?expires=5m"
        async with http.get(url, headers=auth()) as response:
            body = await response.json()
    assert body["url"].startswith("https://upload.shop.example/shop/p/a.jpg?")
    assert "X-Amz-Expires=300" in body["url"]
