"""Where the edges are: a local fleet's state directory, or a headless Service's DNS name in Kubernetes.

Neither needs Kubernetes API permissions: the console's ServiceAccount can stay without a token.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from edgefleet.runtime.state import StateError, read_runtime


@dataclass(frozen=True)
class EdgeRef:
    name: str
    """The name the edge acknowledges purges with."""
    admin_url: str


@dataclass(frozen=True)
class ScalingEvent:
    at: float
    """Unix time."""
    from_edges: int
    to_edges: int
    reason: str


class FleetView(Protocol):
    async def edges(self) -> list[EdgeRef]: ...

    async def last_scaling(self) -> ScalingEvent | None: ...

    @property
    def names_are_known(self) -> bool:
        """Whether ``EdgeRef.name`` is the name edges acknowledge purges with."""
        ...


def scaling_event(decision: dict[str, Any] | None) -> ScalingEvent | None:
    if not decision:
        return None
    try:
        return ScalingEvent(float(decision["at"]), int(decision["from"]), int(decision["to"]), str(decision["reason"]))
    except (KeyError, TypeError, ValueError):
        return None


class LocalFleetView:
    """``edgefleet up``'s fleet, read from its ``runtime.json``."""

    names_are_known = True

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    async def edges(self) -> list[EdgeRef]:
        try:
            state = await asyncio.to_thread(read_runtime, self.state_dir)
        except StateError:
            return []
        return [EdgeRef(e.name, e.admin_url) for e in state.edges if e.state == "ready"]

    async def last_scaling(self) -> ScalingEvent | None:
        try:
            state = await asyncio.to_thread(read_runtime, self.state_dir)
        except StateError:
            return None
        return scaling_event(state.last_decision)


class DnsFleetView:
    """Ready edges are the addresses of the headless edge Service (``publishNotReadyAddresses: false``)."""

    names_are_known = False

    def __init__(self, host: str, admin_port: int) -> None:
        self.host = host
        self.admin_port = admin_port

    async def edges(self) -> list[EdgeRef]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(self.host, self.admin_port, type=socket.SOCK_STREAM)
        except OSError:
            return []
        addresses = sorted({str(info[4][0]) for info in infos})
        return [
            EdgeRef(address, f"http://[{address}]:{self.admin_port}" if ":" in address else
                    f"http://{address}:{self.admin_port}")
            for address in addresses
        ]  # fmt: skip

    async def last_scaling(self) -> ScalingEvent | None:
        return None
