"""One worker process of ``edgefleet edge --workers N``: serves the data port its supervisor bound.

Started by ``supervisor.py`` as ``python -m edgefleet_edge.worker``, never by hand. A worker has no admin
port and no purge-bus connection: the supervisor holds those for the whole edge and talks to each worker
over its control channel (``control.py``). A worker exits when told (SIGTERM/SIGINT) or when that channel
closes, i.e. when its supervisor is gone, so a killed supervisor leaves no worker behind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import json
import logging
import os
import signal
import socket
from pathlib import Path
from typing import Any

from edgefleet.bus import PurgeMessage
from edgefleet.logs import configure_logging

from .access_log import AccessLog
from .control import ChannelClosed, ControlChannel, Message
from .data_plane import DataPlane
from .metrics import EdgeMetrics
from .purging import apply_purge
from .settings import EdgeSettings
from .store import Store

logger = logging.getLogger("edgefleet_edge.worker")  # not __main__: it runs with -m


def settings_to_json(settings: EdgeSettings) -> str:
    """What a worker needs, without the secrets it does not (admin token, bus password)."""
    fields = dataclasses.asdict(dataclasses.replace(settings, admin_token=None, redis=None, redis_password=None))
    fields["cache_dir"] = str(settings.cache_dir) if settings.cache_dir is not None else None
    return json.dumps(fields)


def settings_from_json(text: str) -> EdgeSettings:
    fields: dict[str, Any] = json.loads(text)
    fields["listen"] = tuple(fields["listen"])
    fields["admin_listen"] = tuple(fields["admin_listen"])
    fields["cache_dir"] = Path(fields["cache_dir"]) if fields["cache_dir"] is not None else None
    return EdgeSettings(**fields)


class Worker:
    def __init__(self, settings: EdgeSettings, number: int, listen: socket.socket, control: socket.socket) -> None:
        self.settings = settings
        self.number = number
        self.listen = listen
        self.control_socket = control
        self.channel: ControlChannel | None = None
        # ``settings.memory`` is already this worker's share of the edge's memory budget; the disk tier is the
        # edge's, opened by every worker (the supervisor made it consistent before any started).
        self.store = Store(settings.memory, settings.disk, settings.cache_dir, settings.cache_policy,
                           on_invalidate=self._invalidated)  # fmt: skip
        self.metrics = EdgeMetrics(self.store)
        self.stopping = asyncio.Event()
        self.access_log: AccessLog | None = None

    def _invalidated(self, key: str) -> None:
        if self.channel is not None:
            with contextlib.suppress(ChannelClosed):
                self.channel.notify("invalidated", key=key)

    async def handle(self, message: Message) -> Any:
        op = message.get("op")
        if op == "purge":
            return apply_purge(self.store, PurgeMessage.model_validate(message["purge"]))
        if op == "invalidate":
            self.store.forget_key(str(message["key"]))
            return None
        if op == "stats":
            self.metrics.flush()
            memory_bytes, memory_objects, memory_capacity = self.store.tier_stats()["memory"]
            requests = sum(
                sample.value
                for family in self.metrics.requests.collect()
                for sample in family.samples
                if sample.name.endswith("_total")
            )
            return {
                "memory_bytes": memory_bytes,
                "memory_objects": memory_objects,
                "memory_capacity": memory_capacity,
                "memory_evictions": self.store.evictions()["memory"],
                "memory_declined": self.store.stats.declined["memory"],
                "disk_declined": self.store.stats.declined["disk"],
                "corrupt": self.store.stats.corrupt,
                "disk_errors": self.store.stats.disk_errors,
                "requests": requests,
                "shared_disk_hits": self.store.disk_hits,
            }
        raise ValueError(f"unknown control op {op!r}")

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stopping.set)
        self.channel = await ControlChannel.open(self.control_socket, self.handle)
        reader = loop.create_task(self.channel.run())
        plane = DataPlane.build(self.settings, self.store, self.metrics)
        self.access_log = plane.access_log
        try:
            # Answered only when no purge is in flight: from here on this worker receives every purge.
            await self.channel.request("hello", pid=os.getpid(), worker=self.number)
            await plane.start(sock=self.listen)
            self.channel.notify("serving", pid=os.getpid(), worker=self.number)
            gc.freeze()  # start-up's objects live as long as the process (as in cli.serve)
            lost = loop.create_task(self.channel.closed.wait())
            told = loop.create_task(self.stopping.wait())
            await asyncio.wait({lost, told}, return_when=asyncio.FIRST_COMPLETED)
            for task in (lost, told):
                task.cancel()
            if not self.stopping.is_set():
                logger.warning("Worker %d lost its supervisor; exiting", self.number)
        except ChannelClosed:
            logger.warning("Worker %d lost its supervisor before serving; exiting", self.number)
        finally:
            await plane.stop()
            await self.channel.close()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            self.store.close()


def main() -> int:
    parser = argparse.ArgumentParser(prog="edgefleet_edge.worker", description=__doc__)
    parser.add_argument("--number", type=int, required=True)
    parser.add_argument("--listen-fd", type=int, required=True)
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--settings", required=True, help="EdgeSettings as JSON (from the supervisor)")
    parser.add_argument("--log-format", default="text", choices=["text", "json"])
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    configure_logging(args.log_format, args.log_level)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    listen = socket.socket(fileno=args.listen_fd)
    control = socket.socket(fileno=args.control_fd)
    worker = Worker(settings_from_json(args.settings), args.number, listen, control)
    asyncio.run(worker.run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
