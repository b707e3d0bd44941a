"""HAProxy as a supervised child of the balancer agent (master-worker mode, in the foreground)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import signal
import time
from pathlib import Path

from .runtime_api import RuntimeApi, RuntimeApiError

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: if the agent dies (even by SIGKILL), HAProxy gets SIGTERM and stops,
    so no orphan keeps the data port with a membership nobody updates any more."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class HAProxyStartError(RuntimeError):
    """HAProxy refused its configuration or did not open its runtime API in time."""


class HAProxyProcess:
    def __init__(self, binary: str, config: Path, api: RuntimeApi) -> None:
        self.binary = binary
        self.config = config
        self.api = api
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def check_config(self) -> None:
        check = await asyncio.create_subprocess_exec(
            self.binary, "-c", "-f", str(self.config),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await check.communicate()
        if check.returncode != 0:
            raise HAProxyStartError(f"HAProxy rejected {self.config}: {output.decode(errors='replace').strip()}")

    async def start(self, timeout: float = 15.0) -> None:
        """Start HAProxy and wait until its runtime API answers (its listeners are bound by then)."""
        try:
            self.process = await asyncio.create_subprocess_exec(
                self.binary, "-W", "-db", "-f", str(self.config),
                stdin=asyncio.subprocess.DEVNULL, preexec_fn=_die_with_parent,
            )  # fmt: skip
        except OSError as exc:
            raise HAProxyStartError(f"could not run {self.binary}: {exc}") from exc
        self.starts += 1
        deadline = time.monotonic() + timeout
        while True:
            if self.process.returncode is not None:
                raise HAProxyStartError(f"HAProxy exited with status {self.process.returncode} while starting")
            try:
                await self.api.command("show info")
                return
            except RuntimeApiError:
                if time.monotonic() > deadline:
                    await self.stop()
                    raise HAProxyStartError(f"HAProxy's runtime API did not open within {timeout:.0f}s") from None
                await asyncio.sleep(0.05)

    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def wait(self) -> int:
        assert self.process is not None
        return await self.process.wait()

    async def stop(self, grace: float = 10.0) -> None:
        """SIGUSR1 lets the worker finish the requests in flight; SIGTERM after ``grace`` seconds."""
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGUSR1)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 5.0)
            except TimeoutError:
                process.kill()
                await process.wait()
