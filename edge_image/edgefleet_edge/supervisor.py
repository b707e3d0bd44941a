"""``edgefleet edge --workers N``: one edge (one fleet member) served by N worker processes.

The supervisor binds the data port (one SO_REUSEPORT socket per worker position, see ``_bind``) and starts
N workers (``worker.py``) that inherit their socket and serve it with the ordinary data-port code, so
every core serves; the supervisor restarts a worker that dies, on the same socket. To the balancer and the
operator it is still one edge: the supervisor alone owns the admin port (health, readiness, metrics summed
over the workers, local purge) and the purge-bus consumer (one checkpoint, one acknowledgement per purge
under ``--name``).

Purges reach every worker over its control channel, in bus order, before the purge is checkpointed and
acknowledged. Each purge runs in three steps, because a worker may copy an object from the shared disk
into its memory while another worker is still purging:

1. every worker applies it (its memory, the shared disk, and a new purge generation, so a fetch that
   began before the purge is stored stale);
2. the supervisor applies it to the shared disk (now nothing written before step 1 remains there);
3. every worker applies it again (drops copies it read from the disk between steps 1 and 2).

A worker registers (``hello``) only between purges and serves only after that, so a restarted worker
never misses a purge it could have served around. A worker that dies mid-purge needs no answer: its
memory died with it.

Metrics: workers write prometheus_client's multiprocess files into a private directory, which the
supervisor reads at scrape time (counters and histograms sum across workers, and across restarts);
per-tier store gauges and per-worker figures come from the workers' answers to ``stats``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from edgefleet import metric_names as names
from edgefleet.bus import BusEntry, ConsumerMetrics, FileCheckpoint, MemoryCheckpoint, PurgeBus, PurgeMessage

from .admin import AdminState, admin_routes
from .control import ChannelClosed, ControlChannel, Message
from .metrics import PurgeMetrics
from .purging import apply_purge, follow_purge_bus
from .settings import EdgeSettings
from .store import Store
from .worker import settings_to_json

logger = logging.getLogger(__name__)

STOP_TIMEOUT = 10.0
"""How long a worker gets to finish after SIGTERM before it is killed."""
RESTART_BACKOFF = (0.1, 5.0)
"""First and largest delay before restarting a worker that died; doubles while workers die young."""
WORKER_TIMEOUT = 30.0
"""How long a purge may take in one worker before the worker counts as wedged (it is replaced)."""
STATS_TIMEOUT = 2.0
"""A scrape leaves out the store figures of a worker that does not answer this fast."""
YOUNG = 10.0
"""A worker that dies sooner than this after starting counts as crash-looping."""

SUPERVISOR_FAMILIES = frozenset({names.EDGE_PURGES_APPLIED.removesuffix("_total"), names.EDGE_PURGE_LAG})
"""Families the supervisor reports itself (it applies each purge once for all workers)."""


@dataclass
class WorkerSlot:
    """One of the N worker positions; its process is replaced when it dies."""

    number: int
    process: asyncio.subprocess.Process | None = None
    channel: ControlChannel | None = None
    registered: bool = False
    """Receives purges (said hello)."""
    serving: bool = False
    restarts: int = 0
    last_stats: dict[str, Any] = field(default_factory=dict)


class _WorkerMetrics(Collector):
    """The workers' multiprocess metrics, without the families the supervisor owns."""

    def __init__(self, path: str) -> None:
        self.source = MultiProcessCollector(None, path=path)  # type: ignore[no-untyped-call]

    def collect(self) -> Iterator[Metric]:
        for family in self.source.collect():  # type: ignore[no-untyped-call]
            if family.name not in SUPERVISOR_FAMILIES:
                yield family


class _FleetStoreCollector(Collector):
    """Tier sizes for the whole edge (memory summed over workers, the shared disk once) and per-worker figures."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    def collect(self) -> Iterator[Metric]:
        sup = self.supervisor
        used = GaugeMetricFamily(names.EDGE_CACHE_BYTES, "Bytes stored per tier.", labels=["tier"])
        objects = GaugeMetricFamily(names.EDGE_CACHE_OBJECTS, "Objects stored per tier.", labels=["tier"])
        capacity = GaugeMetricFamily(names.EDGE_CACHE_CAPACITY, "Configured bytes per tier.", labels=["tier"])
        evictions = CounterMetricFamily(
            names.EDGE_EVICTIONS.removesuffix("_total"), "Objects evicted for space.", labels=["tier"]
        )
        stats = [slot.last_stats for slot in sup.slots if slot.serving and slot.last_stats]
        used.add_metric(["memory"], sum(s["memory_bytes"] for s in stats))
        objects.add_metric(["memory"], sum(s["memory_objects"] for s in stats))
        capacity.add_metric(["memory"], sup.settings.memory)
        evictions.add_metric(["memory"], sum(s["memory_evictions"] for s in stats))
        disk_used, disk_objects, disk_evictions = sup.store.disk.stats() if sup.store.disk is not None else (0, 0, 0)
        used.add_metric(["disk"], disk_used)
        objects.add_metric(["disk"], disk_objects)
        capacity.add_metric(["disk"], sup.settings.disk)
        evictions.add_metric(["disk"], disk_evictions)
        # Each worker asks the shared disk's admission for what it fetched, so both tiers' refusals sum.
        declined = CounterMetricFamily(
            names.EDGE_ADMISSIONS_DECLINED.removesuffix("_total"), "New objects admission did not store.",
            labels=["tier"],
        )  # fmt: skip
        for tier in ("memory", "disk"):
            declined.add_metric([tier], sum(s.get(f"{tier}_declined", 0) for s in stats))
        corrupt = CounterMetricFamily(
            names.EDGE_CORRUPT_BODIES.removesuffix("_total"), "Stored bodies found damaged when read, and evicted."
        )
        corrupt.add_metric([], sum(s.get("corrupt", 0) for s in stats))
        disk_errors = CounterMetricFamily(
            names.EDGE_DISK_WRITE_ERRORS.removesuffix("_total"), "Disk tier writes that failed; served unstored."
        )
        disk_errors.add_metric([], sum(s.get("disk_errors", 0) for s in stats))
        yield from (used, objects, capacity, evictions, declined, corrupt, disk_errors)
        serving = GaugeMetricFamily(names.EDGE_WORKERS_SERVING, "Worker processes serving the data port.")
        serving.add_metric([], sum(1 for slot in sup.slots if slot.serving))
        restarts = CounterMetricFamily(
            names.EDGE_WORKER_RESTARTS.removesuffix("_total"), "Worker processes restarted after they died."
        )
        restarts.add_metric([], sum(slot.restarts for slot in sup.slots))
        requests = CounterMetricFamily(
            names.EDGE_WORKER_REQUESTS.removesuffix("_total"), "Client requests per worker.", labels=["worker"]
        )
        disk_hits = CounterMetricFamily(
            names.EDGE_WORKER_SHARED_DISK_HITS.removesuffix("_total"),
            "Objects a worker read from the shared disk tier.", labels=["worker"],
        )  # fmt: skip
        for slot in sup.slots:
            if slot.serving and slot.last_stats:
                requests.add_metric([str(slot.number)], slot.last_stats["requests"])
                disk_hits.add_metric([str(slot.number)], slot.last_stats["shared_disk_hits"])
        yield from (serving, restarts, requests, disk_hits)


class Supervisor:
    def __init__(self, settings: EdgeSettings, workers: int, log_format: str = "text", log_level: str = "INFO") -> None:
        if workers < 2:
            raise ValueError("a supervisor needs at least two workers (one is the plain edge)")
        self.settings = settings
        self.workers = workers
        self.log_format = log_format
        self.log_level = log_level
        token = settings.admin_token
        if not token:
            token = secrets.token_urlsafe(32)
            logger.warning("No --admin-token given: the admin API (purge, metrics) is closed to everyone")
        self.admin_token = token
        self.slots = [WorkerSlot(number) for number in range(workers)]
        self.store: Store = Store(0, 0, None)
        """The supervisor's view for purges: the shared disk tier only (no memory of its own)."""
        self.registry = CollectorRegistry()
        self.purge_metrics = PurgeMetrics(self.registry)
        self.bus_metrics = ConsumerMetrics(self.registry)
        self.registry.register(_FleetStoreCollector(self))
        self.bus_state = AdminState()
        """The purge consumer's readiness (the supervisor's own also waits for its workers)."""
        self.data_port = 0
        self.admin_port = 0
        self._purge_lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._sockets: list[socket.socket] = []
        self._metrics_dir = ""
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self._redis: aioredis.Redis | None = None

    # ---- readiness -----------------------------------------------------------------------------

    def readiness(self) -> tuple[bool, str]:
        if not self.bus_state.ready:
            return False, self.bus_state.reason
        down = [str(slot.number) for slot in self.slots if not slot.serving]
        if down:
            return False, f"workers not serving: {', '.join(down)}"
        return True, ""

    # ---- start and stop ------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()  # nothing half-started stays behind: sockets, metrics directory, workers
            raise

    async def _start(self) -> None:
        s = self.settings
        if s.cache_dir is not None and s.disk:
            self.store = Store(0, s.disk, s.cache_dir, s.cache_policy)
            kept = self.store.load_disk()
            logger.info("Shared disk tier in %s holds %d objects", s.cache_dir, kept)
        self._metrics_dir = self._fresh_metrics_dir()
        self.registry.register(_WorkerMetrics(self._metrics_dir))
        self._sockets = self._bind(s.listen)
        self.data_port = int(self._sockets[0].getsockname()[1])
        app = admin_routes(self.admin_token, self.readiness, self._render_metrics, self.apply)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, s.admin_listen[0], s.admin_listen[1], backlog=1024, reuse_port=True)
        await site.start()
        server = site._server  # the bound port, when 0 was asked for
        assert server is not None
        self.admin_port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        loop = asyncio.get_running_loop()
        # Workers last: every port is bound, so a start-up failure leaves no process behind.
        self._tasks = [loop.create_task(self._keep(slot)) for slot in self.slots]
        if s.redis:
            self._tasks.append(loop.create_task(self._follow_bus()))
        else:
            self.bus_state.ready = True
        logger.info("Edge %s serving on port %d with %d workers (admin %d)", s.name, self.data_port, self.workers,
                    self.admin_port)  # fmt: skip

    async def stop(self) -> None:
        self._stopping.set()
        for slot in self.slots:
            self._terminate(slot)
        # Each worker position's task returns once its process has exited (see ``_keep``).
        keepers = self._tasks[: len(self.slots)]
        _, late = await asyncio.wait(keepers, timeout=STOP_TIMEOUT) if keepers else (set(), set())
        for slot in self.slots:
            if slot.process is not None and slot.process.returncode is None:
                logger.warning("Worker %d did not stop in %.0fs; killed it", slot.number, STOP_TIMEOUT)
                with contextlib.suppress(ProcessLookupError):
                    slot.process.kill()
        if late:
            await asyncio.wait(late, timeout=STOP_TIMEOUT)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._runner is not None:
            await self._runner.cleanup()
        if self._redis is not None:
            await self._redis.aclose()
        for sock in self._sockets:
            sock.close()
        self.store.close()
        if self._metrics_dir:
            shutil.rmtree(self._metrics_dir, ignore_errors=True)

    # ---- workers -------------------------------------------------------------------------------

    def _bind(self, address: tuple[str, int]) -> list[socket.socket]:
        """One listening socket per worker position, all on one port (SO_REUSEPORT), all held by the supervisor.

        The kernel spreads new connections evenly over the sockets by hash, where one shared socket lets
        whichever worker wakes first accept a whole burst (measured: splits from 28/72 to 64/36 under wrk).
        Because the supervisor keeps every socket open, connections that arrive for a worker that died wait
        in its socket's queue for the replacement instead of being refused.
        """
        first = socket.create_server(address, backlog=1024, reuse_port=True)
        port = first.getsockname()[1]
        rest = [socket.create_server((address[0], port), backlog=1024, reuse_port=True) for _ in self.slots[1:]]
        return [first, *rest]

    def _fresh_metrics_dir(self) -> str:
        """An empty private directory for the workers' multiprocess metric files.

        In the cache directory when there is one (this edge owns it, and one left by a killed supervisor is
        cleared here instead of piling up in /tmp); else a new temporary directory.
        """
        cache_dir = self.settings.cache_dir
        if cache_dir is None:
            return tempfile.mkdtemp(prefix="edgefleet-edge-metrics-")
        path = cache_dir / "metrics"
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(mode=0o700, parents=True)
        return str(path)

    def _worker_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PROMETHEUS_MULTIPROC_DIR"] = self._metrics_dir
        for secret in ("EDGEFLEET_ADMIN_TOKEN", "EDGEFLEET_REDIS", "EDGEFLEET_REDIS_PASSWORD"):
            env.pop(secret, None)
        return env

    def _worker_settings(self) -> str:
        share = max(1, self.settings.memory // self.workers)  # the memory tier is per worker: split the budget
        return settings_to_json(dataclasses.replace(self.settings, memory=share))

    async def _spawn(self, slot: WorkerSlot) -> None:
        listen = self._sockets[slot.number]
        ours, theirs = socket.socketpair()
        try:
            slot.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "edgefleet_edge.worker",
                "--number", str(slot.number),
                "--listen-fd", str(listen.fileno()),
                "--control-fd", str(theirs.fileno()),
                "--settings", self._worker_settings(),
                "--log-format", self.log_format, "--log-level", self.log_level,
                pass_fds=(listen.fileno(), theirs.fileno()), env=self._worker_env(),
                # Its own session: a terminal's Ctrl-C reaches the supervisor only, which stops workers in order.
                start_new_session=True,
            )  # fmt: skip
        finally:
            theirs.close()

        async def handle(message: Message) -> Any:
            return await self._from_worker(slot, message)

        slot.channel = await ControlChannel.open(ours, handle)

    def _terminate(self, slot: WorkerSlot) -> None:
        if slot.process is not None and slot.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                slot.process.send_signal(signal.SIGTERM)

    async def _keep(self, slot: WorkerSlot) -> None:
        """Run one worker position: start its process, restart it whenever it dies, until stopping.

        Returns only once its current process has exited, so ``stop`` can wait on it.
        """
        backoff = RESTART_BACKOFF[0]
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                await self._spawn(slot)
            except OSError as exc:
                logger.error("Could not start worker %d: %s", slot.number, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), RESTART_BACKOFF[1])
                continue
            assert slot.process is not None and slot.channel is not None
            if self._stopping.is_set():
                self._terminate(slot)  # stop came while it was starting
            reader = asyncio.get_running_loop().create_task(slot.channel.run())
            code = await slot.process.wait()
            slot.registered = slot.serving = False
            slot.last_stats = {}
            await slot.channel.close()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            mark_process_dead(slot.process.pid, self._metrics_dir)  # type: ignore[no-untyped-call]
            if self._stopping.is_set():
                return
            slot.restarts += 1
            logger.warning("Worker %d (pid %d) exited with code %s; restarting it", slot.number, slot.process.pid, code)
            if time.monotonic() - started < YOUNG:
                with contextlib.suppress(TimeoutError):  # crash-loop backoff, cut short by stop
                    await asyncio.wait_for(self._stopping.wait(), backoff)
                backoff = min(backoff * 2, RESTART_BACKOFF[1])
            else:
                backoff = RESTART_BACKOFF[0]

    async def _from_worker(self, slot: WorkerSlot, message: Message) -> Any:
        op = message.get("op")
        if op == "hello":
            async with self._purge_lock:  # between purges: from now on this worker gets every purge
                slot.registered = True
            return {}
        if op == "serving":
            slot.serving = True
            logger.info("Worker %d (pid %s) serving", slot.number, message.get("pid"))
            return None
        if op == "invalidated":
            # An unsafe method or a no-store answer through one worker: every other worker drops its copies.
            for other in self.slots:
                if other is not slot and other.registered and other.channel is not None:
                    with contextlib.suppress(ChannelClosed):
                        other.channel.notify("invalidate", key=message["key"])
            return None
        raise ValueError(f"unknown control op {op!r}")

    async def _ask(self, slot: WorkerSlot, op: str, timeout: float, **fields: Any) -> Any:
        assert slot.channel is not None
        return await asyncio.wait_for(slot.channel.request(op, **fields), timeout)

    async def _ask_all(self, op: str, **fields: Any) -> list[Any]:
        """Ask every registered worker; the answers of those that are still alive afterwards."""
        slots = [slot for slot in self.slots if slot.registered and slot.channel is not None]
        answers = await asyncio.gather(*(self._ask(slot, op, WORKER_TIMEOUT, **fields) for slot in slots),
                                       return_exceptions=True)  # fmt: skip
        results = []
        for slot, answer in zip(slots, answers, strict=True):
            if isinstance(answer, ChannelClosed):
                continue  # the worker died; what it held died with it
            if isinstance(answer, TimeoutError):
                # A worker that cannot answer in this long serves nobody well either: replace it, and what it
                # held goes with it.
                logger.error("Worker %d did not answer %s in %.0fs; killed it", slot.number, op, WORKER_TIMEOUT)
                if slot.process is not None and slot.process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        slot.process.kill()
                continue
            if isinstance(answer, BaseException):
                raise RuntimeError(f"worker {slot.number} failed {op}: {answer}") from answer
            results.append(answer)
        return results

    # ---- purges --------------------------------------------------------------------------------

    async def apply(self, message: PurgeMessage) -> int:
        """Apply a purge to every worker and the shared disk (see the module docstring); objects affected."""
        payload = message.model_dump(mode="json")
        async with self._purge_lock:
            first = await self._ask_all("purge", purge=payload)
            on_disk = apply_purge(self.store, message, self.purge_metrics)
            await self._ask_all("purge", purge=payload)
        return max([on_disk, *(int(count) for count in first)])

    async def _apply_entry(self, entry: BusEntry) -> None:
        affected = await self.apply(entry.message)
        logger.info("Applied purge %s (%s) on every worker: %d objects", entry.entry_id, entry.message.purge_id,
                    affected)  # fmt: skip

    async def _follow_bus(self) -> None:
        s = self.settings
        assert s.redis is not None
        self._redis = aioredis.Redis.from_url(s.redis, password=s.redis_password)
        bus = PurgeBus(self._redis, s.cluster)
        checkpoint = FileCheckpoint(s.cache_dir / "purge.checkpoint") if s.cache_dir else MemoryCheckpoint()
        consumer = bus.purge_consumer(s.name, checkpoint, metrics=self.bus_metrics)
        await follow_purge_bus(consumer, self._apply_entry, self.bus_state)

    # ---- metrics -------------------------------------------------------------------------------

    async def _render_metrics(self) -> bytes:
        slots = [slot for slot in self.slots if slot.serving and slot.channel is not None]
        answers = await asyncio.gather(*(self._ask(slot, "stats", STATS_TIMEOUT) for slot in slots),
                                       return_exceptions=True)  # fmt: skip
        for slot, answer in zip(slots, answers, strict=True):
            slot.last_stats = answer if isinstance(answer, dict) else {}
        return generate_latest(self.registry)
