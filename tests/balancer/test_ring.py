"""Rendezvous hashing with bounded loads: affinity, balance, minimal reshuffle, hot-key spill."""

from __future__ import annotations

from collections import Counter

import pytest
from edgefleet_balancer.ring import choose, load_bound, owners

EDGES = [f"edge-{i}" for i in range(10)]
KEYS = [f"/assets/products/sku-{i:06d}.jpg?w=320" for i in range(100_000)]


@pytest.fixture(scope="module")
def placement() -> dict[str, str]:
    return {key: owners(key, EDGES)[0] for key in KEYS}


def test_same_key_always_maps_to_the_same_edge() -> None:
    assert {owners("/assets/a.jpg", EDGES)[0] for _ in range(50)} == {owners("/assets/a.jpg", EDGES)[0]}
    assert owners("/assets/a.jpg", list(reversed(EDGES)))[0] == owners("/assets/a.jpg", EDGES)[0]


def test_keys_spread_over_every_edge_within_the_load_bound(placement: dict[str, str]) -> None:
    counts = Counter(placement.values())
    mean = len(KEYS) / len(EDGES)
    assert set(counts) == set(EDGES)
    print(f"busiest edge holds {max(counts.values()) / mean:.3f}x the mean")
    assert max(counts.values()) <= 1.25 * mean
    assert min(counts.values()) >= 0.75 * mean


def test_adding_an_edge_moves_about_one_eleventh_of_keys_all_to_the_new_edge(placement: dict[str, str]) -> None:
    grown = [*EDGES, "edge-new"]
    moved = {key for key in KEYS if owners(key, grown)[0] != placement[key]}
    fraction = len(moved) / len(KEYS)
    print(f"adding one edge to ten moved {fraction:.4f} of keys (ideal 1/11 = {1 / 11:.4f})")
    assert 0.08 < fraction < 0.102
    assert all(owners(key, grown)[0] == "edge-new" for key in moved)


def test_removing_an_edge_moves_only_its_own_keys(placement: dict[str, str]) -> None:
    shrunk = [edge for edge in EDGES if edge != "edge-3"]
    for key in KEYS[:20_000]:
        new_owner = owners(key, shrunk)[0]
        if placement[key] != "edge-3":
            assert new_owner == placement[key]
        else:
            assert new_owner == owners(key, EDGES)[1], "its keys go to their second owner"


@pytest.mark.parametrize(
    ("total", "members", "factor", "bound"),
    [(0, 4, 1.25, 1), (8, 4, 1.25, 3), (99, 10, 1.25, 13), (10, 0, 1.25, 0)],
    ids=["idle", "small", "large", "no-members"],
)
def test_load_bound_is_c_times_the_mean_rounded_up(total: int, members: int, factor: float, bound: int) -> None:
    assert load_bound(total, members, factor) == bound


def test_hot_key_spills_to_its_second_owner_only_when_the_owner_is_over_the_bound() -> None:
    key = "/assets/flash-sale/hero.jpg"
    first, second = owners(key, EDGES)[:2]
    calm = {edge: 1 for edge in EDGES}
    assert choose(key, EDGES, calm, 1.25)[0] == first
    hot = {**calm, first: 10}
    assert choose(key, EDGES, hot, 1.25)[0] == second
