"""Child processes of the local runtime: started in their own process group, stopped for certain."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

import aiohttp

logger = logging.getLogger(__name__)


class ProcessStartError(RuntimeError):
    """A child process exited or never became ready; the message quotes the end of its log."""


class ManagedProcess:
    """One child (origin, an edge, the balancer, Prometheus) with its log file in the state dir."""

    def __init__(self, name: str, command: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.command = command
        self.log_path = log_path
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(self.env or {})},
                start_new_session=True,  # Ctrl-C reaches the runtime only; it stops children in order
            )
        finally:
            log.close()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the child's process group, then SIGKILL whatever is left after ``timeout``."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                logger.warning("Killed %s after %.0fs without exiting", self.name, timeout)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        else:
            # Reap any grandchildren the dead child left in its group (e.g. worker processes).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None


async def wait_http_ok(
    process: ManagedProcess, url: str, timeout: float, headers: dict[str, str] | None = None
) -> None:
    """Poll ``url`` until it answers 2xx; fail fast if the process dies, and after ``timeout``."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while True:
            if not process.alive():
                raise ProcessStartError(f"{process.name} exited during start-up:\n{process.log_tail()}")
            try:
                async with session.get(url, headers=headers) as response:
                    if response.status < 300:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise ProcessStartError(
                    f"{process.name} not ready at {url} after {timeout:.0f}s:\n{process.log_tail()}"
                )
            await asyncio.sleep(0.1)  # polling a readiness condition under a deadline
