"""HAProxy's runtime API (the admin-level stats socket): one command per connection, text in, text out.

The control plane uses it to fill and empty server slots (``set server``), to name them for ``X-Edge``
(``add map``/``set map``) and to read how HAProxy sees each edge (``show stat``).
"""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import dataclass
from pathlib import Path


class RuntimeApiError(RuntimeError):
    """HAProxy refused a runtime command or could not be reached."""


@dataclass(frozen=True)
class ServerStat:
    """One server slot as HAProxy sees it (a row of ``show stat``)."""

    slot: str
    status: str
    """UP, DOWN, MAINT, ``UP 1/2`` (going down), ``DOWN 1/2`` (coming up), NOLB, DRAIN."""
    address: str
    check_status: str
    """The last health check: L7OK, L4CON (refused), L4TOUT, L7STS (wrong status), ..."""
    check_port: int | None
    active_connections: int
    total_sessions: int

    @property
    def serving(self) -> bool:
        return self.status.startswith("UP") or self.status in {"NOLB", "no check"}


# Answers that mean the command worked: most write commands answer nothing, a few say so in words.
_FINE = ("", "Done.")


class RuntimeApi:
    def __init__(self, socket: Path, timeout: float = 5.0) -> None:
        self.socket = socket
        self.timeout = timeout

    async def command(self, line: str) -> str:
        """Send one command, return HAProxy's whole answer."""
        if "\n" in line or ";" in line:
            raise RuntimeApiError(f"refusing a runtime command with a separator: {line!r}")
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_unix_connection(str(self.socket))
                try:
                    writer.write(line.encode() + b"\n")
                    await writer.drain()
                    answer = await reader.read()
                finally:
                    writer.close()
        except (OSError, TimeoutError) as exc:
            raise RuntimeApiError(f"HAProxy's runtime API at {self.socket} did not answer {line!r}: {exc}") from exc
        return answer.decode(errors="replace")

    async def change(self, line: str) -> None:
        """A write command; anything but silence (or "Done.") is HAProxy refusing it."""
        answer = (await self.command(line)).strip()
        if answer not in _FINE and not answer.startswith("IP changed from") and "no need to change" not in answer:
            raise RuntimeApiError(f"HAProxy refused {line!r}: {answer}")

    async def server_stats(self, backend: str) -> list[ServerStat]:
        text = await self.command("show stat")
        if not text.startswith("# "):
            raise RuntimeApiError(f"unexpected answer to 'show stat': {text[:200]!r}")
        rows = csv.DictReader(io.StringIO(text[2:]))
        stats = []
        for row in rows:
            if row.get("pxname") != backend or row.get("svname") in {"FRONTEND", "BACKEND"}:
                continue
            port = row.get("check_port") or ""
            stats.append(
                ServerStat(
                    slot=row.get("svname", ""),
                    status=row.get("status", ""),
                    address=row.get("addr", ""),
                    check_status=(row.get("check_status") or "").lstrip("* "),
                    check_port=int(port) if port.isdigit() else None,
                    active_connections=int(row.get("scur") or 0),
                    total_sessions=int(row.get("stot") or 0),
                )
            )
        return stats
