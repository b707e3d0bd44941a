"""The store's tier policies: byte limits hold through adds, removals and re-adds; victims are reported."""

from __future__ import annotations

import random

import pytest
from edgefleet_edge.tiers import make_tier_policy


@pytest.mark.parametrize("name", ["lru", "s3fifo", "s3fifo-gdsf"], ids=["lru", "s3fifo", "s3fifo-gdsf"])
def test_tier_reports_every_eviction_and_stays_within_capacity(name: str) -> None:
    tier = make_tier_policy(name, 50_000)
    resident: dict[str, int] = {}
    rng = random.Random(3)
    for step in range(20_000):
        key = f"k{rng.randrange(400)}"
        action = rng.random()
        if action < 0.1:
            tier.remove(key)
            resident.pop(key, None)
        elif action < 0.4 and key in resident:
            tier.touch(key)
        else:
            size = rng.choice([500, 2_000, 8_000])
            resident.pop(key, None)
            for victim in tier.add(key, size):
                assert victim != key
                resident.pop(victim)
            resident[key] = size
        assert tier.used == sum(resident.values()), f"step {step}"
        assert tier.used <= tier.capacity
        assert len(tier) == len(resident)


@pytest.mark.parametrize("name", ["s3fifo", "s3fifo-gdsf"], ids=["s3fifo", "s3fifo-gdsf"])
def test_tier_keeps_reused_objects_through_a_scan(name: str) -> None:
    tier = make_tier_policy(name, 100_000)
    hot = [f"hot-{i}" for i in range(40)]
    for key in hot:
        tier.add(key, 1_000)
    for _ in range(3):
        for key in hot:
            tier.touch(key)
    for i in range(2_000):
        tier.add(f"scan-{i}", 1_000)
    assert sum(key in tier for key in hot) >= 35
