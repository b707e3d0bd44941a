"""Which edge sits in which HAProxy server slot, and the runtime commands that get there from here.

HAProxy places a server on its consistent-hash ring by the server's id, which for a ``server-template`` slot
is its number. So the slot an edge gets decides which keys it owns, and two balancer replicas route a key
to the same edge only if they put every edge in the same slot. ``assign_slots`` is therefore a pure
function of the member *set*: an edge takes the slot its name hashes to, or the next free one, in name
order. An edge keeps its slot while it stays; only a hash collision between a newcomer and an edge that
sorts after it moves that one edge to the next slot.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .haproxy_config import BACKEND, slot_name


class MembershipError(ValueError):
    """A member list the balancer cannot use (bad address, more edges than slots, duplicate names)."""


@dataclass(frozen=True, order=True)
class Member:
    """One edge: where its data port is, and where its health check goes (its admin port)."""

    name: str
    host: str
    """An IP address (HAProxy's runtime API takes addresses, not names)."""
    port: int
    check_port: int | None = None
    """The edge's admin port, which serves /healthz; None checks the data port."""


def preferred_slot(name: str, slots: int) -> int:
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % slots + 1


def assign_slots(members: Iterable[Member], slots: int) -> dict[int, Member]:
    """Slot number (1..slots) -> member; the same set always gives the same assignment."""
    ordered = sorted(members)
    names = [m.name for m in ordered]
    if len(set(names)) != len(names):
        raise MembershipError("member names must be unique")
    if len(ordered) > slots:
        raise MembershipError(f"{len(ordered)} edges but only {slots} slots (raise --max-edges)")
    taken: dict[int, Member] = {}
    for member in ordered:
        slot = preferred_slot(member.name, slots)
        while slot in taken:
            slot = slot % slots + 1
        taken[slot] = member
    return taken


def runtime_commands(
    current: Mapping[int, Member], wanted: Mapping[int, Member], names_map: str | None, checks: bool = True
) -> list[str]:
    """Runtime API commands that turn the ``current`` slots into the ``wanted`` ones.

    A slot that changes hands goes through maintenance first, so no request reaches an address while it
    is half set up; slots that stay the same are not touched (their health and connections carry on).
    ``names_map`` is the map that names slots for ``X-Edge`` (None when the header is off); ``checks`` says
    whether the slots have health checks (whose port is then the edge's admin port).
    """
    commands: list[str] = []
    for slot in sorted(set(current) | set(wanted)):
        before, after = current.get(slot), wanted.get(slot)
        if before == after:
            continue
        server = f"{BACKEND}/{slot_name(slot)}"
        if before is not None:
            commands.append(f"set server {server} state maint")
            if names_map:
                commands.append(f"del map {names_map} {slot_name(slot)}")
        if after is not None:
            commands.append(f"set server {server} addr {after.host} port {after.port}")
            if checks:
                commands.append(f"set server {server} check-port {after.check_port or after.port}")
            if names_map:
                commands.append(f"add map {names_map} {slot_name(slot)} {after.name}")
            commands.append(f"set server {server} state ready")
    return commands
