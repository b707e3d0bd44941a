"""Which edge owns a cache key: rendezvous (highest-random-weight) hashing with bounded loads.

Why rendezvous: with the tens of edges a shop fleet runs, scoring every edge per key costs
microseconds, needs no virtual-node tuning, balances within sampling noise, and moves exactly the keys
it must: adding an edge to n moves 1/(n+1) of the keys (to the new edge only), removing one moves only
that edge's keys. Maglev would be O(1) per lookup but reshuffles more on membership change.

Bounded loads (Mirrokni, Thorup, Zadimoghaddam 2018): no edge takes more than ``c`` times the mean
in-flight load; a hot key spills to its next owner in rendezvous order, which is stable, so the spill
goes to the same second edge every time and is cached there too.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence


def _score(key: str, member: str) -> int:
    digest = hashlib.blake2b(f"{member}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owners(key: str, members: Sequence[str]) -> list[str]:
    """``members`` in ownership order for ``key``: the first owns it, the rest are its fall-backs."""
    return sorted(members, key=lambda member: _score(key, member), reverse=True)


def load_bound(total_in_flight: int, members: int, load_factor: float) -> int:
    """The most requests one edge may have in flight: ceil(c * (total + 1) / n)."""
    if members <= 0:
        return 0
    return max(1, math.ceil(load_factor * (total_in_flight + 1) / members))


def choose(key: str, members: Sequence[str], in_flight: Mapping[str, int], load_factor: float) -> list[str]:
    """Edges to try, in order: the owner unless it is over the bound, then the others by rank."""
    ranked = owners(key, members)
    bound = load_bound(sum(in_flight.get(m, 0) for m in members), len(members), load_factor)
    for index, member in enumerate(ranked):
        if in_flight.get(member, 0) < bound:
            return ranked[index:] + ranked[:index]
    return ranked
