"""The durable outbox: object changes whose purge/warm events are not yet on the bus.

Every change is written here *before* it is published and removed once the bus confirmed every message
in it, so a bus that is down, or an origin that crashes between storing an object and publishing its
purge, loses nothing: the publisher drains the outbox, oldest first, whenever the bus answers again.

One JSON file per change, named so that names sort in arrival order, written atomically (temporary
file, fsync, rename). The messages are stored as encoded, so a republished purge keeps its idempotency
key and the bus stores it once however often it is sent.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from edgefleet.bus import BusMessage, MalformedMessage, decode, encode

log = logging.getLogger(__name__)

SUFFIX = ".change.json"


class OutboxError(RuntimeError):
    """The outbox directory could not be written."""


@dataclass(frozen=True)
class OutboxEntry:
    name: str
    """File name; sorts in arrival order and identifies the entry to clients (``GET /api/outbox``)."""
    messages: tuple[BusMessage, ...]
    summary: str
    """What changed, for logs: e.g. ``replaced products/shoe.jpg``."""


class Outbox:
    """A directory of pending changes. Blocking file I/O: call from a thread."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._sequence = itertools.count()

    def start(self) -> int:
        """Create the directory; the number of changes left pending by an earlier run."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutboxError(f"cannot create the outbox directory: {exc.strerror}") from exc
        return len(self.names())

    def add(self, messages: list[BusMessage], summary: str) -> OutboxEntry:
        name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._sequence):06d}{SUFFIX}"
        document = {"summary": summary, "messages": [encode(m) for m in messages]}
        try:
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".writing-")
            try:
                with os.fdopen(fd, "w") as handle:
                    json.dump(document, handle)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.directory / name)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise OutboxError(f"cannot write to the outbox: {exc.strerror}") from exc
        return OutboxEntry(name, tuple(messages), summary)

    def names(self) -> list[str]:
        """Pending entries, oldest first."""
        try:
            return sorted(p.name for p in self.directory.iterdir() if p.name.endswith(SUFFIX))
        except FileNotFoundError:
            return []

    def load(self, name: str) -> OutboxEntry | None:
        """The entry, or None when it is gone or unreadable (an unreadable one is set aside, not retried)."""
        path = self.directory / name
        try:
            document = json.loads(path.read_text())
            messages = tuple(decode(fields) for fields in document["messages"])
            return OutboxEntry(name, messages, str(document.get("summary", "")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, MalformedMessage) as exc:
            log.error("Set aside unreadable outbox entry %s: %s", name, exc)
            path.replace(path.with_name(name + ".unreadable"))
            return None

    def remove(self, name: str) -> None:
        (self.directory / name).unlink(missing_ok=True)
