"""Which edges exist and which are healthy: passive ejection after failures, active re-admission."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

EJECT_AFTER_FAILURES = 3


@dataclass
class Member:
    name: str
    url: str
    admin_url: str | None = None
    healthy: bool = True
    consecutive_failures: int = 0
    in_flight: int = 0
    ejected_at: float | None = None

    @property
    def health_url(self) -> str:
        return f"{(self.admin_url or self.url).rstrip('/')}/healthz"


@dataclass
class Membership:
    members: dict[str, Member] = field(default_factory=dict)
    ejections: int = 0

    def replace(self, wanted: list[tuple[str, str, str | None]]) -> None:
        """Set the member list, keeping health state for edges that stay."""
        kept: dict[str, Member] = {}
        for name, url, admin_url in wanted:
            current = self.members.get(name)
            if current is not None and current.url == url:
                current.admin_url = admin_url
                kept[name] = current
            else:
                kept[name] = Member(name, url, admin_url)
        self.members = kept

    def healthy(self) -> list[str]:
        return [name for name, member in self.members.items() if member.healthy]

    def record_failure(self, name: str) -> bool:
        """Count a failed request or probe; True when this failure ejected the edge."""
        member = self.members.get(name)
        if member is None:
            return False
        member.consecutive_failures += 1
        if member.healthy and member.consecutive_failures >= EJECT_AFTER_FAILURES:
            member.healthy = False
            member.ejected_at = time.monotonic()
            self.ejections += 1
            return True
        return False

    def record_success(self, name: str) -> bool:
        """Count a success; True when it re-admitted an ejected edge."""
        member = self.members.get(name)
        if member is None:
            return False
        member.consecutive_failures = 0
        if not member.healthy:
            member.healthy = True
            member.ejected_at = None
            return True
        return False
