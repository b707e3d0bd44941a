"""Admission: an object large for its tier waits for a second request, small ones do not, "large" scales with
the tier and with its traffic, and every list the policies keep stays bounded."""

from __future__ import annotations

import random

import pytest
from edgefleet_edge.tiers import DEFAULT_POLICY, POLICY_NAMES, S3FIFOGDSFTier, S3FIFOTier, TierPolicy, make_tier_policy

CAPACITY = 1_000_000  # the default's cold "large" is over 1/1024 of it, 976 bytes


def request(tier: TierPolicy, item: str, size: int) -> bool:
    """What the store does for one request: a hit, or admission and then storing. True on a hit."""
    if item in tier:
        tier.touch(item)
        return True
    if tier.admits(item, size):
        tier.add(item, size)
    return False


def default_tier(capacity: int = CAPACITY) -> S3FIFOGDSFTier:
    tier = make_tier_policy(DEFAULT_POLICY, capacity)
    assert isinstance(tier, S3FIFOGDSFTier)
    return tier


def stored_on_request(tier: TierPolicy, item: str, size: int) -> int:
    requests = 0
    while item not in tier and requests < 3:
        request(tier, item, size)
        requests += 1
    return requests


def test_default_policy_is_s3fifo_gdsf_and_the_others_stay_selectable() -> None:
    assert DEFAULT_POLICY == "s3fifo-gdsf"
    assert POLICY_NAMES == ("s3fifo-gdsf", "s3fifo-sa", "s3fifo", "lru")


@pytest.mark.parametrize(
    ("size", "expected"),
    [(100, 1), (976, 1), (977, 2), (50_000, 2)],
    ids=["small", "at-threshold", "just-large", "large"],
)
def test_object_new_to_a_cold_tier_is_stored_on_the_request_its_size_calls_for(size: int, expected: int) -> None:
    tier = default_tier()
    assert stored_on_request(tier, "object", size) == expected
    assert tier.used == size


@pytest.mark.parametrize("capacity", [10_000, 1_000_000, 100_000_000], ids=["10KB", "1MB", "100MB"])
def test_cold_threshold_is_a_share_of_the_tier_whatever_its_size(capacity: int) -> None:
    assert default_tier(capacity).large == capacity // 1024


@pytest.mark.parametrize("capacity", [50, 500, 5_000], ids=["50-objects", "500-objects", "5000-objects"])
def test_unit_size_objects_are_never_large_however_few_the_tier_holds(capacity: int) -> None:
    """The old 0.05% threshold made every object large in a tier of under 2,000 objects."""
    tier = default_tier(capacity)
    for i in range(3 * capacity):
        request(tier, f"page-{i}", 1)
        assert f"page-{i}" in tier, "stored on its first request"
    assert len(tier) == capacity


def test_threshold_follows_the_objects_the_tier_is_asked_to_store() -> None:
    tier = default_tier(100_000_000)  # a cold 100 MB tier: large is over 97,656 bytes
    for i in range(2_000):
        request(tier, f"thumb-{i}", 10_000)
    assert tier.large == 128 * 10_000, "128 times the mean object once it has seen traffic"
    assert stored_on_request(tier, "photo.jpg", 1_000_000) == 1, "large for a cold tier, ordinary for this one"
    assert stored_on_request(tier, "video.mp4", 2_000_000) == 2, "128 times the mean: one request is not enough"


def test_object_hit_thousands_of_times_stays_with_small_hit_counts() -> None:
    tier = default_tier(100_000)
    request(tier, "app.js", 5_000)
    for i in range(5_000):
        request(tier, "app.js", 5_000)  # hot: hit far more often than the count cap
        request(tier, f"new-{i}", 1_000)
        request(tier, f"new-{i}", 1_000)
        assert max(tier._freq.values()) <= 255, "counts stay ints CPython never allocates"
    assert "app.js" in tier, "each hit is still seen when its entry surfaces"


def test_empty_bodies_are_stored_promoted_and_evicted_like_any_object() -> None:
    tier = default_tier(10_000)
    for round_ in range(3):
        for i in range(200):
            request(tier, f"empty-{i}", 0)
            request(tier, f"body-{round_}-{i}", 100)
            request(tier, f"body-{round_}-{i}", 100)
    assert tier.used <= tier.capacity and any(f"empty-{i}" in tier for i in range(200))


def test_object_larger_than_the_tier_is_never_admitted() -> None:
    tier = default_tier()
    for _ in range(3):
        assert not tier.admits("huge", CAPACITY + 1)
    assert "huge" not in tier and tier.used == 0


def test_recently_evicted_object_skips_probation_when_it_comes_back() -> None:
    tier = default_tier(100_000)
    request(tier, "photo", 20_000)
    request(tier, "photo", 20_000)  # a hit on probation: promoted when the small queue is next evicted
    for i in range(1_000):  # other reused objects push it out
        for _ in range(2):
            request(tier, f"filler-{i}", 1_000)
        if "photo" not in tier:
            break
    assert "photo" not in tier and tier.ghosts > 0
    request(tier, "photo", 20_000)
    assert "photo" in tier
    assert not any(item == "photo" for item, _ in tier._small), "the ghost sent it straight to the main queue"


def test_main_queue_keeps_small_and_popular_objects_over_large_rarely_used_ones() -> None:
    tier = default_tier(100_000)
    for _ in range(4):  # all reused, so all reach the main queue
        for i in range(10):
            request(tier, f"big-{i}", 5_000)
        for i in range(40):
            request(tier, f"icon-{i}", 500)
    for i in range(2_000):  # reused newcomers need room; app.js stays in demand
        request(tier, f"new-{i}", 1_000)
        request(tier, f"new-{i}", 1_000)
        if i % 20 == 0:
            request(tier, "app.js", 5_000)
        if i == 150:  # the tier has turned over once: the large, no longer used objects went first
            assert sum(f"icon-{i}" in tier for i in range(40)) / 40 > sum(f"big-{i}" in tier for i in range(10)) / 10
    assert "app.js" in tier, "popular: kept although large"


@pytest.mark.parametrize("name", ["s3fifo-gdsf", "s3fifo-sa"], ids=["s3fifo-gdsf", "s3fifo-sa"])
def test_ghost_list_stays_bounded_through_a_crawl_of_one_hit_wonders(name: str) -> None:
    tier = make_tier_policy(name, CAPACITY)
    assert isinstance(tier, S3FIFOGDSFTier | S3FIFOTier)
    for i in range(100):
        for _ in range(3):
            request(tier, f"hot-{i}", 2_000)
    for i in range(50_000):  # a crawler: every key once
        request(tier, f"crawl-{i}", 20_000)
        assert tier.ghosts <= max(3 * len(tier) + 64, CAPACITY // 500)
    assert sum(f"hot-{i}" in tier for i in range(100)) == 100, "one-hit wonders do not push out reused objects"


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


@pytest.mark.parametrize("name", ["s3fifo-gdsf", "s3fifo-sa"], ids=["s3fifo-gdsf", "s3fifo-sa"])
def test_queues_stay_bounded_when_one_object_is_replaced_over_and_over(name: str) -> None:
    tier = make_tier_policy(name, CAPACITY)
    assert isinstance(tier, S3FIFOGDSFTier | S3FIFOTier)
    for _ in range(10_000):  # refetches of one URL: each add replaces the last, nothing is ever evicted
        tier.add("product.jpg", 100)
    assert len(tier) == 1 and tier.used == 100
    assert len(tier._small) + len(tier._main) <= 2 * len(tier) + 65  # stale pairs are compacted away


def test_size_aware_s3fifo_still_waits_for_a_second_request_over_a_fixed_share() -> None:
    tier = make_tier_policy("s3fifo-sa", CAPACITY)  # "large" is over 0.05%, 500 bytes
    assert stored_on_request(tier, "a", 500) == 1
    assert stored_on_request(tier, "b", 501) == 2
