"""Size-aware S3-FIFO, the edge's default: large objects wait for a second request, small ones do not, and
every list the policy keeps stays bounded."""

from __future__ import annotations

import random

import pytest
from edgefleet_edge.tiers import DEFAULT_POLICY, POLICY_NAMES, S3FIFOTier, make_tier_policy

CAPACITY = 1_000_000  # "large" is over 500 bytes for the default policy here


def request(tier: S3FIFOTier, item: str, size: int) -> bool:
    """What the store does for one request: a hit, or admission and then storing. True on a hit."""
    if item in tier:
        tier.touch(item)
        return True
    if tier.admits(item, size):
        tier.add(item, size)
    return False


def default_tier(capacity: int = CAPACITY) -> S3FIFOTier:
    tier = make_tier_policy(DEFAULT_POLICY, capacity)
    assert isinstance(tier, S3FIFOTier)
    return tier


def test_default_policy_is_size_aware_s3fifo_and_the_baselines_stay_selectable() -> None:
    assert DEFAULT_POLICY == "s3fifo-sa"
    assert set(POLICY_NAMES) == {"s3fifo-sa", "s3fifo", "lru"}


@pytest.mark.parametrize(
    ("size", "stored_on_request"),
    [(100, 1), (500, 1), (501, 2), (50_000, 2)],
    ids=["small", "at-threshold", "just-large", "large"],
)
def test_object_is_stored_on_the_request_its_size_calls_for(size: int, stored_on_request: int) -> None:
    tier = default_tier()
    requests = 0
    while "object" not in tier and requests < 3:
        request(tier, "object", size)
        requests += 1
    assert requests == stored_on_request
    assert tier.used == size


@pytest.mark.parametrize("name", ["s3fifo", "lru"], ids=["s3fifo", "lru"])
def test_baseline_policies_store_a_large_object_on_its_first_request(name: str) -> None:
    tier = make_tier_policy(name, CAPACITY)
    assert tier.admits("big", 50_000)


def test_object_larger_than_the_tier_is_never_admitted() -> None:
    tier = default_tier()
    for _ in range(3):
        assert not tier.admits("huge", CAPACITY + 1)
    assert "huge" not in tier and tier.used == 0


def test_recently_evicted_large_object_is_stored_again_on_its_next_request() -> None:
    tier = default_tier(100_000)  # large: over 50 bytes
    request(tier, "big", 20_000)
    request(tier, "big", 20_000)
    assert "big" in tier
    for i in range(1_000):  # other twice-requested objects push it out
        for _ in range(2):
            request(tier, f"filler-{i}", 1_000)
        if "big" not in tier:
            break
    assert "big" not in tier
    request(tier, "big", 20_000)
    assert "big" in tier, "the eviction left a ghost, so one request brings it back"


def test_ghost_list_stays_bounded_through_a_crawl_of_one_hit_wonders() -> None:
    tier = default_tier()
    for i in range(100):
        for _ in range(3):
            request(tier, f"hot-{i}", 2_000)
    for i in range(50_000):  # a crawler: every large key once
        request(tier, f"crawl-{i}", 20_000)
        assert tier.ghosts <= max(len(tier), CAPACITY // 500)
    assert sum(f"hot-{i}" in tier for i in range(100)) == 100, "refused one-hit wonders evict nothing"


@pytest.mark.parametrize("name", sorted(POLICY_NAMES), ids=sorted(POLICY_NAMES))
def test_byte_accounting_never_exceeds_capacity_through_admission_purges_and_replacements(name: str) -> None:
    tier = make_tier_policy(name, 200_000)
    resident: dict[str, int] = {}
    rng = random.Random(11)
    for step in range(30_000):
        key = f"k{rng.randrange(600)}"
        size = rng.choice([200, 2_000, 30_000, 120_000, 250_000])
        action = rng.random()
        if action < 0.05:
            tier.remove(key)
            resident.pop(key, None)
        elif key in tier:
            tier.touch(key)
        elif tier.admits(key, size):
            for victim in tier.add(key, size):
                resident.pop(victim)
            resident[key] = size
        assert tier.used == sum(resident.values()) <= tier.capacity, f"step {step}"
        assert len(tier) == len(resident)


def test_queues_stay_bounded_when_one_object_is_replaced_over_and_over() -> None:
    tier = default_tier()
    for _ in range(10_000):  # refetches of one URL: each add replaces the last, nothing is ever evicted
        tier.add("product.jpg", 100)
    assert len(tier) == 1 and tier.used == 100
    assert len(tier._small) + len(tier._main) <= 2 * len(tier) + 65  # stale pairs are compacted away
