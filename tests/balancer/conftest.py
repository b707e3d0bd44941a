"""Fixtures of the balancer tests; the stub edges and helpers live in harness.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.balancer.harness import Setup, running


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    """Three stub edges behind a balancer, all healthy."""
    async with running() as s:
        yield s
