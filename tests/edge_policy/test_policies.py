"""Eviction policies: byte limits always hold, and the scan-resistant ones keep a hot set through a scan."""

from __future__ import annotations

import random

import pytest
from edgefleet_edge.policy import POLICIES, make_policy


@pytest.mark.parametrize("name", sorted(POLICIES), ids=sorted(POLICIES))
def test_policy_never_exceeds_its_capacity_and_never_admits_oversize_objects(name: str) -> None:
    policy = make_policy(name, 100_000)
    rng = random.Random(7)
    for _ in range(20_000):
        size = rng.choice([100, 1_000, 10_000, 40_000, 150_000])
        hit = policy.access(f"k{rng.randrange(2_000)}-{size}", size)
        assert policy.used <= policy.capacity
        if size > policy.capacity:
            assert not hit


@pytest.mark.parametrize("name", sorted(POLICIES), ids=sorted(POLICIES))
def test_repeated_access_hits(name: str) -> None:
    policy = make_policy(name, 100_000)
    for _ in range(5):
        policy.access("hot", 1_000)
    assert policy.access("hot", 1_000)


def test_size_aware_admission_caches_a_large_object_on_its_second_request() -> None:
    policy = make_policy("s3fifo-sa", 1_000_000)  # "large" is over 500 bytes here
    assert not policy.access("big", 50_000)
    assert policy.used == 0, "the first request only leaves a ghost"
    assert not policy.access("big", 50_000)
    assert policy.access("big", 50_000)
    assert not policy.access("small", 100)
    assert policy.access("small", 100), "small objects are cached on their first request"


@pytest.mark.parametrize(
    "name", ["default", "s3fifo", "s3fifo-sa", "wtinylfu"], ids=["default", "s3fifo", "s3fifo-sa", "wtinylfu"]
)
def test_one_hit_wonder_scan_does_not_flush_the_hot_set(name: str) -> None:
    hot = [f"hot-{i}" for i in range(50)]

    def hot_hit_ratio(policy: object) -> float:
        return sum(policy.access(key, 1_000) for key in hot) / len(hot)  # type: ignore[attr-defined]

    policy = make_policy(name, 100_000)
    lru = make_policy("lru", 100_000)
    for _ in range(10):
        hot_hit_ratio(policy)
        hot_hit_ratio(lru)
    for i in range(5_000):  # a crawler: every key once
        policy.access(f"scan-{i}", 1_000)
        lru.access(f"scan-{i}", 1_000)
    assert hot_hit_ratio(lru) == 0.0, "LRU loses the hot set to the scan"
    assert hot_hit_ratio(policy) >= 0.8


def test_default_names_the_edges_default_policy() -> None:
    from edgefleet_edge.policy import TierReplay
    from edgefleet_edge.tiers import DEFAULT_POLICY, make_tier_policy

    policy = make_policy("default", 100_000)
    assert isinstance(policy, TierReplay)
    assert type(policy.tier) is type(make_tier_policy(DEFAULT_POLICY, 100_000))


def test_unknown_policy_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="choose from"):
        make_policy("arc", 10)
