"""Origin test fixtures: a real origin on loopback over each storage backend, and real images.

``origin_factory`` builds an origin over the backend chosen by the ``backend`` fixture, which is
parametrized, so every test that uses it runs against the filesystem and against S3 (moto's server).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from edgefleet_origin.server import RunningOrigin, running_origin
from edgefleet_origin.settings import FileLocation, OriginSettings
from edgefleet_origin.storage_s3 import S3Location
from minio import Minio
from origin_testkit import TOKEN

S3_ACCESS, S3_SECRET = "testing-access", "testing-secret"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port, for the whole session (tests use their own buckets)."""
    server_module = pytest.importorskip("moto.server")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"{host}:{port}"
    server.stop()


def new_bucket(endpoint: str) -> S3Location:
    location = S3Location(f"origin-{uuid.uuid4().hex[:12]}", endpoint, False, "us-east-1", S3_ACCESS, S3_SECRET)
    client = Minio(endpoint, access_key=S3_ACCESS, secret_key=S3_SECRET, secure=False, region="us-east-1")
    client.make_bucket(location.bucket)
    return location


@pytest.fixture(params=["filesystem", "s3"], ids=["filesystem", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


OriginFactory = Callable[..., AbstractAsyncContextManager[RunningOrigin]]


@pytest.fixture
def base_settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> OriginSettings:
    if backend == "s3":
        storage: FileLocation | S3Location = new_bucket(request.getfixturevalue("s3_endpoint"))
    else:
        storage = FileLocation(tmp_path / "objects")
    return OriginSettings(
        storage=storage,
        listen=("127.0.0.1", 0),
        upload_token=TOKEN,
        webhook_token=TOKEN,
        variant_cache_dir=tmp_path / "variants",
        max_upload_size=256 * 1024,
        max_pixels=4_000_000,
        image_workers=1,
    )


@pytest.fixture
def origin_factory(base_settings: OriginSettings) -> OriginFactory:
    """``async with origin_factory(redis_url=..., ...) as origin``: settings overrides as keywords."""

    def make(**overrides: Any) -> AbstractAsyncContextManager[RunningOrigin]:
        return running_origin(replace(base_settings, **overrides))

    return make


@pytest.fixture
async def origin(origin_factory: OriginFactory) -> AsyncIterator[RunningOrigin]:
    async with origin_factory() as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session
