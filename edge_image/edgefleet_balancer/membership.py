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

from .haproxy_config import BACKEND, WARM_BACKEND, slot_name


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
    """Runtime API commands that turn the ``current`` slots into the ``wanted`` ones, in both backends.

    Make before break: free slots are filled first, slots that change hands next, emptied slots last, so
    an edge that moves to another slot is never out of the ring meanwhile, and the ring never passes
    through an empty state on its way from one non-empty membership to another. A slot that changes hands
    goes through maintenance first, so no request reaches an address while it is half set up; slots that
    stay the same are not touched (their health and connections carry on).

    The warm backend's slots track the data backend's (``haproxy_config``), so they follow its
    maintenance and health by themselves and need only their address; without health checks (``checks``
    False: nothing to track) their state is set here as well. ``names_map`` is the map that names slots
    for ``X-Edge`` (None when the header is off); with checks the check port is the edge's admin port.
    """
    changed = [slot for slot in sorted(set(current) | set(wanted)) if current.get(slot) != wanted.get(slot)]
    fills = [slot for slot in changed if slot not in current]
    handovers = [slot for slot in changed if slot in current and slot in wanted]
    empties = [slot for slot in changed if slot not in wanted]
    commands: list[str] = []
    for slot in fills:
        commands += _fill(slot, wanted[slot], names_map, checks)
    for slot in handovers:
        commands += _empty(slot, names_map, checks) + _fill(slot, wanted[slot], names_map, checks)
    for slot in empties:
        commands += _empty(slot, names_map, checks)
    return commands


def reset_commands(wanted: Mapping[int, Member], slots: int, names_map: str | None, checks: bool = True) -> list[str]:
    """Commands that bring every one of ``slots`` slots to ``wanted`` whatever HAProxy holds now (after a
    command failed halfway): the names map is cleared, the wanted slots are filled (an edge already there
    keeps serving: a slot is never put in maintenance on its way to what it already is) and every other
    slot is emptied."""
    commands = [f"clear map {names_map}"] if names_map else []
    for slot in sorted(wanted):
        commands += _fill(slot, wanted[slot], names_map, checks)
    for slot in range(1, slots + 1):
        if slot not in wanted:
            commands += _empty(slot, None, checks)
    return commands


def _empty(slot: int, names_map: str | None, checks: bool) -> list[str]:
    commands = [f"set server {BACKEND}/{slot_name(slot)} state maint"]
    if not checks:
        commands.append(f"set server {WARM_BACKEND}/{slot_name(slot)} state maint")
    if names_map:
        commands.append(f"del map {names_map} {slot_name(slot)}")
    return commands


def _fill(slot: int, member: Member, names_map: str | None, checks: bool) -> list[str]:
    server, warm = f"{BACKEND}/{slot_name(slot)}", f"{WARM_BACKEND}/{slot_name(slot)}"
    commands = [
        f"set server {server} addr {member.host} port {member.port}",
        f"set server {warm} addr {member.host} port {member.port}",
    ]
    if checks:
        commands.append(f"set server {server} check-port {member.check_port or member.port}")
    if names_map:
        commands.append(f"add map {names_map} {slot_name(slot)} {member.name}")
    commands.append(f"set server {server} state ready")  # the warm slot follows (track), or:
    if not checks:
        commands.append(f"set server {warm} state ready")
    return commands
