"""Purges from the console: published on the bus like ``edgefleet purge``, then watched edge by edge.

The console remembers which edges were members when it issued a purge, so "every edge acknowledged"
means what the bus contract says: every edge that was a member when it was issued.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

import redis.asyncio as aioredis
from pydantic import ValidationError
from redis.exceptions import RedisError

from edgefleet.bus import PurgeBus, PurgeMessage
from edgefleet.bus.messages import MalformedMessage, decode

PurgeKind = Literal["path", "prefix", "tag", "all"]


class PurgeInputError(ValueError):
    """A purge request the bus would refuse; the message names the field."""


def purge_message(kind: str, targets: list[str], soft: bool, issuer: str) -> PurgeMessage:
    """The bus message for a form: paths get ``/assets/`` in front unless they start with ``/``."""
    cleaned = [t.strip() for t in targets if t.strip()]
    if kind not in ("path", "prefix", "tag", "all"):
        raise PurgeInputError(f"kind must be path, prefix, tag or all, not {kind!r}")
    if kind != "all" and not cleaned:
        raise PurgeInputError(f"name at least one {kind} to purge")
    if len(cleaned) > 100:
        raise PurgeInputError("at most 100 targets in one purge")
    if kind in ("path", "prefix"):
        cleaned = [t if t.startswith("/") else "/assets/" + t for t in cleaned]
    try:
        return PurgeMessage(
            purge_id=f"console-{uuid.uuid4()}",
            paths=tuple(cleaned) if kind == "path" else (),
            prefixes=tuple(cleaned) if kind == "prefix" else (),
            tags=tuple(cleaned) if kind == "tag" else (),
            all=kind == "all",
            soft=soft,
            issuer=issuer,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise PurgeInputError(f"{kind} {first.get('input')!r} is not valid: {first['msg']}") from None


def describe(message: PurgeMessage) -> str:
    parts = [f"path {p}" for p in message.paths] + [f"prefix {p}" for p in message.prefixes]
    parts += [f"tag {t}" for t in message.tags] + (["everything"] if message.all else [])
    text = ", ".join(parts[:4]) + (f" and {len(parts) - 4} more" if len(parts) > 4 else "")
    return ("soft purge of " if message.soft else "purge of ") + text


@dataclass
class IssuedPurge:
    entry_id: str
    message: PurgeMessage
    expected: tuple[str, ...]
    """Edges that were members when it was issued (names, or addresses when names are unknown)."""
    names_known: bool


@dataclass
class PurgeStatus:
    entry_id: str
    description: str
    issuer: str
    issued_at: float
    acks: dict[str, float]
    """Edge -> seconds after issue."""
    expected: int | None
    pending: list[str]
    complete: bool
    duration_ms: float | None
    soft: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "entry_id": self.entry_id,
            "description": self.description,
            "issuer": self.issuer,
            "issued_at": self.issued_at,
            "acks": {name: round(seconds * 1000, 1) for name, seconds in sorted(self.acks.items())},
            "expected": self.expected,
            "pending": self.pending,
            "complete": self.complete,
            "duration_ms": self.duration_ms,
            "soft": self.soft,
        }


@dataclass
class PurgeDesk:
    client: aioredis.Redis
    cluster: str
    issued: deque[IssuedPurge] = field(default_factory=lambda: deque(maxlen=200))

    @property
    def bus(self) -> PurgeBus:
        return PurgeBus(self.client, self.cluster)

    async def issue(self, message: PurgeMessage, members: list[str], names_known: bool) -> IssuedPurge:
        entry_id = await self.bus.publish_purge(message)
        record = IssuedPurge(entry_id, message, tuple(members), names_known)
        self.issued.append(record)
        return record

    def _issued(self, entry_id: str) -> IssuedPurge | None:
        return next((p for p in self.issued if p.entry_id == entry_id), None)

    async def status(self, entry_id: str, message: PurgeMessage | None = None) -> PurgeStatus | None:
        record = self._issued(entry_id)
        if message is None:
            if record is not None:
                message = record.message
            else:
                raw = await self.client.xrange(self.bus.purge_stream, min=entry_id, max=entry_id, count=1)
                if not raw:
                    return None
                try:
                    decoded = decode(raw[0][1])
                except MalformedMessage:
                    return None
                if not isinstance(decoded, PurgeMessage):
                    return None
                message = decoded
        acks = {
            name: max(0.0, at - message.issued_at) for name, at in (await self.bus.acknowledgements(entry_id)).items()
        }
        if record is not None and record.names_known:
            pending = [m for m in record.expected if m not in acks]
            complete = not pending
            expected: int | None = len(record.expected)
        elif record is not None:
            pending, expected = [], len(record.expected)
            complete = len(acks) >= expected
        else:
            pending, expected, complete = [], None, False
        counted = [acks[m] for m in (record.expected if record and record.names_known else acks) if m in acks]
        # Purges issued elsewhere (edgefleet purge, PurgeRequests): who was a member is unknown here, so the
        # duration is the slowest acknowledgement so far.
        duration = max(counted) * 1000 if counted and (complete or record is None) else None
        return PurgeStatus(entry_id, describe(message), message.issuer, message.issued_at, acks, expected, pending,
                           complete, round(duration, 1) if duration is not None else None, message.soft)  # fmt: skip

    async def recent(self, count: int = 20) -> list[PurgeStatus]:
        """The newest purges on the bus (whoever issued them), newest first."""
        try:
            raw = await self.client.xrevrange(self.bus.purge_stream, count=count)
        except RedisError:
            return []
        out = []
        for raw_id, fields in raw:
            entry_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
            try:
                message = decode(fields)
            except MalformedMessage:
                continue
            if isinstance(message, PurgeMessage):
                status = await self.status(entry_id, message)
                if status is not None:
                    out.append(status)
        return out


def since(at: float) -> str:
    seconds = max(0, int(time.time() - at))
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"
