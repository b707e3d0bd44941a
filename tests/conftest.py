"""Fixtures shared by every test: real parts, and the rule that CI never skips them."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from edgefleet.embedded_redis import EmbeddedRedis, EmbeddedRedisError

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(available: bool, what: str) -> None:
    """Skip locally, but fail in CI, when a real part the test needs is missing."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"missing in CI: {what}", pytrace=False)
    pytest.skip(f"missing: {what}")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    """A real Redis server on loopback for the whole session (tests use their own keys or flush)."""
    server = EmbeddedRedis()
    try:
        server.start()
    except EmbeddedRedisError as exc:
        require(False, f"a Redis server ({exc})")
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> Iterator[str]:
    """A clean Redis database for one test."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    client.close()
    yield redis_server.url


def kube_tool(name: str) -> str | None:
    """A binary of the test control plane (helm, kubectl, ...): from EDGEFLEET_KUBE_BIN, which
    `make test` sets to the directory hack/kube-testenv/build.sh built, else from PATH."""
    bin_dir = os.environ.get("EDGEFLEET_KUBE_BIN")
    if bin_dir:
        candidate = os.path.join(bin_dir, name)
        if os.access(candidate, os.X_OK):
            return candidate
    import shutil

    return shutil.which(name)
