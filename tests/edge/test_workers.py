"""``edgefleet edge --workers 2`` as a real process tree: one edge to the fleet, two processes on the port."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from edgefleet import metric_names as names
from edgefleet.bus import PurgeBus, PurgeMessage
from edgefleet.embedded_redis import free_port
from tests.edge.conftest import OriginStub
from tests.edge.test_purges_and_storage import tagged, until

TOKEN = "admin-secret"
ATTEMPTS = 400
"""Fresh connections tried before concluding the kernel never hands one to a given worker."""
EDGEFLEET = str(Path(sys.executable).with_name("edgefleet"))


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with open(task / "children") as listing:
            found.update(int(child) for child in listing.read().split())
    return found


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


@dataclass
class WorkersEdge:
    process: subprocess.Popen[bytes]
    data_port: int
    admin_port: int
    origin: OriginStub
    cache_dir: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.data_port}"

    async def get(self, path: str) -> tuple[aiohttp.ClientResponse, bytes]:
        """One request on a fresh connection, so the kernel picks the worker that accepts it."""
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session, session.get(self.url + path) as response:
            return response, await response.read()

    async def admin(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with session.get(f"http://127.0.0.1:{self.admin_port}{path}", headers=headers) as response:
                return response.status, await response.text()

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, text = await self.admin("/metrics")
        assert status == 200, text
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    async def per_worker(self, name: str) -> dict[str, float]:
        return {dict(labels)["worker"]: value for (sample, labels), value in (await self.metrics()).items()
                if sample == name}  # fmt: skip

    async def ready(self) -> bool:
        try:
            return (await self.admin("/readyz"))[0] == 200
        except aiohttp.ClientError:
            return False

    def workers(self) -> set[int]:
        return children(self.process.pid)


StartEdge = Callable[..., Awaitable[WorkersEdge]]


@pytest.fixture
async def start_edge(origin: OriginStub, tmp_path: Path) -> AsyncIterator[StartEdge]:
    """Starts ``edgefleet edge --workers 2`` and waits for it to be ready; stops whatever it started."""
    started: list[WorkersEdge] = []

    async def start(
        *,
        disk: str = "64Mi",
        memory: str = "8Mi",
        redis: str | None = None,
        policy: str = "s3fifo-sa",
        workers: int = 2,
        cache_dir: Path | None = None,
    ) -> WorkersEdge:
        data_port, admin_port = free_port(), free_port()
        cache_dir = cache_dir or tmp_path / "cache"
        log = tmp_path / f"edge-{len(started)}.log"
        command = [
            EDGEFLEET, "edge", "--workers", str(workers), "--name", "edge-w", "--cluster", "shop",
            "--listen", f"127.0.0.1:{data_port}", "--admin-listen", f"127.0.0.1:{admin_port}",
            "--origin", f"http://127.0.0.1:{origin.port}", "--memory", memory, "--disk", disk,
            "--cache-dir", str(cache_dir), "--log-level", "INFO",
            "--cache-policy", policy,
        ]  # fmt: skip
        if redis is not None:
            command += ["--redis", redis]
        env = {**os.environ, "EDGEFLEET_ADMIN_TOKEN": TOKEN}
        with open(log, "wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        edge = WorkersEdge(process, data_port, admin_port, origin, cache_dir, log)
        started.append(edge)

        async def ready_or_dead() -> bool:
            if process.poll() is not None:
                pytest.fail(f"edge exited with {process.returncode}:\n{log.read_text()}")
            return await edge.ready()

        await until(ready_or_dead, "the edge and both workers to be ready")
        return edge

    yield start
    for edge in started:
        if edge.process.poll() is None:
            edge.process.send_signal(signal.SIGTERM)
            try:
                edge.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                edge.process.kill()
                edge.process.wait()
                pytest.fail(f"edge did not stop on SIGTERM:\n{edge.log.read_text()}")


async def test_workers_share_the_disk_tier_so_one_origin_fetch_serves_both(
    origin: OriginStub, start_edge: StartEdge
) -> None:
    origin.routes["/assets/shared.jpg"] = tagged("shared", "shared")
    edge = await start_edge()
    first, body = await edge.get("/assets/shared.jpg")
    assert first.headers["X-Cache"] == "MISS"
    for _ in range(ATTEMPTS):
        response, again = await edge.get("/assets/shared.jpg")
        assert response.headers["X-Cache"] == "HIT"
        assert again == body
        served = await edge.per_worker(names.EDGE_WORKER_REQUESTS)
        disk_hits = await edge.per_worker(names.EDGE_WORKER_SHARED_DISK_HITS)
        if len(served) == 2 and all(served.values()) and sum(disk_hits.values()) >= 1:
            break
    else:
        pytest.fail(f"requests never reached both workers: {served}, shared disk hits {disk_hits}")
    assert origin.count("/assets/shared.jpg") == 1


async def test_workers_metrics_are_summed_into_one_edge(origin: OriginStub, start_edge: StartEdge) -> None:
    origin.routes["/assets/m.jpg"] = tagged("m", "m")
    edge = await start_edge(memory="8Mi")
    for _ in range(ATTEMPTS):
        await edge.get("/assets/m.jpg")
        served = await edge.per_worker(names.EDGE_WORKER_REQUESTS)
        if len(served) == 2 and all(served.values()):
            break
    else:
        pytest.fail(f"requests never reached both workers: {served}")
    metrics = await edge.metrics()
    total = sum(value for (name, _), value in metrics.items() if name == names.EDGE_REQUESTS)
    assert total == sum(served.values())
    assert metrics[(names.EDGE_REQUESTS, (("cache_status", "miss"), ("code", "200")))] == 1
    assert metrics[(names.EDGE_CACHE_CAPACITY, (("tier", "memory"),))] == 8 * 2**20
    assert metrics[(names.EDGE_CACHE_CAPACITY, (("tier", "disk"),))] == 64 * 2**20
    assert metrics[(names.EDGE_CACHE_OBJECTS, (("tier", "disk"),))] == 1
    assert metrics[(names.EDGE_WORKERS_SERVING, ())] == 2


async def test_bus_purge_is_applied_by_every_worker_and_acknowledged_once(
    origin: OriginStub, start_edge: StartEdge, redis_url: str
) -> None:
    origin.routes["/assets/p.jpg"] = tagged("p", "sku-9")
    bus = PurgeBus(aioredis.Redis.from_url(redis_url), cluster="shop")
    try:
        edge = await start_edge(redis=redis_url)
        _, old = await edge.get("/assets/p.jpg")
        await warm_both_workers(edge, "/assets/p.jpg")
        entry_id = await bus.publish_purge(PurgeMessage(purge_id="p-1", tags=("sku-9",)))

        async def acknowledged() -> bool:
            return await bus.pending(entry_id, ["edge-w"]) == []

        await until(acknowledged, "the edge to acknowledge the purge")
        assert list(await bus.acknowledgements(entry_id)) == ["edge-w"]
        metrics = await edge.metrics()
        assert metrics[(names.EDGE_PURGES_APPLIED, (("kind", "tag"),))] == 1
        served_before = await edge.per_worker(names.EDGE_WORKER_REQUESTS)
        for _ in range(ATTEMPTS):  # no worker serves the purged copy, whichever takes the connection
            _, body = await edge.get("/assets/p.jpg")
            assert body != old
            served = await edge.per_worker(names.EDGE_WORKER_REQUESTS)
            if all(served[w] > served_before[w] for w in served):
                break
        else:
            pytest.fail("requests after the purge never reached both workers")
        assert origin.count("/assets/p.jpg") == 2
    finally:
        await bus.client.aclose()


async def test_restarted_edge_catches_up_before_it_is_ready_and_keeps_its_shared_disk(
    origin: OriginStub, start_edge: StartEdge, redis_url: str
) -> None:
    origin.routes["/assets/keep.jpg"] = tagged("keep", "keep")
    origin.routes["/assets/gone.jpg"] = tagged("gone", "gone")
    bus = PurgeBus(aioredis.Redis.from_url(redis_url), cluster="shop")
    try:
        first = await start_edge(redis=redis_url)
        _, kept = await first.get("/assets/keep.jpg")
        await first.get("/assets/gone.jpg")
        first.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(first.process.wait, 15) == 0
        entry_id = await bus.publish_purge(PurgeMessage(purge_id="while-down", tags=("gone",)))

        second = await start_edge(redis=redis_url)  # returns once /readyz says ready
        assert await bus.pending(entry_id, ["edge-w"]) == []
        response, body = await second.get("/assets/keep.jpg")
        assert response.headers["X-Cache"] == "HIT" and body == kept
        response, _ = await second.get("/assets/gone.jpg")
        assert response.headers["X-Cache"] == "MISS"
        assert origin.count("/assets/keep.jpg") == 1 and origin.count("/assets/gone.jpg") == 2
    finally:
        await bus.client.aclose()


async def warm_both_workers(edge: WorkersEdge, path: str) -> None:
    """Until the second worker has copied ``path`` from the shared disk (both then hold it in memory)."""
    await edge.get(path)
    for _ in range(ATTEMPTS):
        await edge.get(path)
        if sum((await edge.per_worker(names.EDGE_WORKER_SHARED_DISK_HITS)).values()) >= 1:
            return
    pytest.fail("the second worker never read the object from the shared disk")


async def test_admin_purge_on_the_supervisor_reaches_every_worker_before_it_answers(
    origin: OriginStub, start_edge: StartEdge
) -> None:
    origin.routes["/assets/a.jpg"] = tagged("a", "a")
    origin.routes["/assets/b.jpg"] = tagged("b", "b")
    edge = await start_edge()
    await warm_both_workers(edge, "/assets/a.jpg")
    await edge.get("/assets/b.jpg")
    purge = f"http://127.0.0.1:{edge.admin_port}/purge"
    async with aiohttp.ClientSession() as session:
        async with session.post(purge, json={"paths": ["/assets/a.jpg"]}) as response:
            assert response.status == 401
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with session.post(purge, json={"paths": ["/assets/a.jpg"]}, headers=headers) as response:
            assert response.status == 200
            assert (await response.json())["purged"] >= 1
    metrics = await edge.metrics()
    assert metrics[(names.EDGE_CACHE_OBJECTS, (("tier", "memory"),))] == 1  # b.jpg, in one worker
    assert metrics[(names.EDGE_CACHE_OBJECTS, (("tier", "disk"),))] == 1


async def test_unsafe_method_through_one_worker_invalidates_every_workers_copy(
    origin: OriginStub, start_edge: StartEdge
) -> None:
    origin.routes["/cart/1"] = tagged("cart", "cart")
    edge = await start_edge()
    await warm_both_workers(edge, "/cart/1")
    async with aiohttp.ClientSession() as session, session.post(edge.url + "/cart/1", data=b"{}") as response:
        assert response.status == 200

    async def forgotten() -> bool:
        metrics = await edge.metrics()
        return (metrics[(names.EDGE_CACHE_OBJECTS, (("tier", "memory"),))] == 0
                and metrics[(names.EDGE_CACHE_OBJECTS, (("tier", "disk"),))] == 0)  # fmt: skip

    await until(forgotten, "every worker to drop its copy")


async def test_killed_worker_is_restarted_while_the_port_keeps_serving(
    origin: OriginStub, start_edge: StartEdge
) -> None:
    origin.routes["/assets/k.jpg"] = tagged("k", "k")
    edge = await start_edge()
    await edge.get("/assets/k.jpg")
    before = edge.workers()
    assert len(before) == 2
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    response, _ = await edge.get("/assets/k.jpg")  # the other worker takes every connection meanwhile
    assert response.status == 200

    async def restarted() -> bool:
        metrics = await edge.metrics()
        return metrics[(names.EDGE_WORKER_RESTARTS, ())] == 1 and metrics[(names.EDGE_WORKERS_SERVING, ())] == 2

    await until(restarted, "the killed worker to be replaced")
    after = edge.workers()
    assert victim not in after and len(after) == 2
    assert await edge.ready()
    for _ in range(10):
        response, _ = await edge.get("/assets/k.jpg")
        assert response.headers["X-Cache"] == "HIT"
    assert origin.count("/assets/k.jpg") == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_stopped_supervisor_leaves_no_worker_behind(
    origin: OriginStub, start_edge: StartEdge, sig: signal.Signals
) -> None:
    edge = await start_edge()
    workers = edge.workers()
    assert len(workers) == 2
    edge.process.send_signal(sig)
    code = await asyncio.to_thread(edge.process.wait, 15)
    assert code == (0 if sig == signal.SIGTERM else -signal.SIGKILL)
    await until(lambda: not any(alive(pid) for pid in workers), "every worker to exit")
    if sig == signal.SIGTERM:
        assert "Traceback" not in edge.log.read_text()


async def test_disk_limit_holds_for_all_workers_together(origin: OriginStub, start_edge: StartEdge) -> None:
    blob = b"x" * 65_536
    for i in range(60):
        origin.routes[f"/assets/{i}.bin"] = lambda request: web.Response(
            body=blob, headers={"Cache-Control": "max-age=300"}
        )
    # Without size-aware admission; --disk bounds the index as well as the bodies (2 MiB hold about 28 of these).
    edge = await start_edge(disk="2Mi", memory="64Ki", policy="s3fifo")
    for i in range(60):
        response, body = await edge.get(f"/assets/{i}.bin")
        assert response.status == 200 and body == blob
    metrics = await edge.metrics()
    disk_bytes = metrics[(names.EDGE_CACHE_BYTES, (("tier", "disk"),))]
    assert 0 < disk_bytes <= 2 * 2**20
    on_disk = sum(path.stat().st_size for path in (edge.cache_dir / "objects").iterdir())
    assert on_disk == disk_bytes
    index = sum(path.stat().st_size for path in edge.cache_dir.glob("index.sqlite*"))
    assert on_disk + index <= 2 * 2**20
    assert metrics[(names.EDGE_EVICTIONS, (("tier", "disk"),))] >= 60 - 32
    served = await edge.per_worker(names.EDGE_WORKER_REQUESTS)
    assert sum(served.values()) == 60


async def test_workers_without_a_disk_tier_each_cache_in_memory_and_all_purge(
    origin: OriginStub, start_edge: StartEdge
) -> None:
    origin.routes["/assets/mem.jpg"] = tagged("mem", "mem")
    edge = await start_edge(disk="0")
    for _ in range(ATTEMPTS):
        await edge.get("/assets/mem.jpg")
        served = await edge.per_worker(names.EDGE_WORKER_REQUESTS)
        if len(served) == 2 and all(served.values()):
            break
    else:
        pytest.fail(f"requests never reached both workers: {served}")
    assert origin.count("/assets/mem.jpg") <= 2  # nothing shared: at most one fetch per worker
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
        url = f"http://127.0.0.1:{edge.admin_port}/purge"
        async with session.post(url, json={"tags": ["mem"]}) as response:
            assert response.status == 200
    metrics = await edge.metrics()
    assert metrics[(names.EDGE_CACHE_OBJECTS, (("tier", "memory"),))] == 0
    assert metrics[(names.EDGE_CACHE_CAPACITY, (("tier", "disk"),))] == 0


async def test_large_object_streams_from_the_shared_disk_through_every_worker(
    origin: OriginStub, start_edge: StartEdge
) -> None:
    large = bytes(range(256)) * 1200  # 300 KB: above each worker's memory-object limit (1Mi / 2 / 8), so it streams
    origin.routes["/video/big.mp4"] = lambda request: web.Response(body=large, headers={"Cache-Control": "max-age=300"})
    edge = await start_edge(memory="1Mi", policy="s3fifo")
    for _ in range(ATTEMPTS):
        response, body = await edge.get("/video/big.mp4")
        assert response.status == 200 and body == large
        served = await edge.per_worker(names.EDGE_WORKER_REQUESTS)
        disk_hits = await edge.per_worker(names.EDGE_WORKER_SHARED_DISK_HITS)
        if len(served) == 2 and all(served.values()) and all(disk_hits.values()):
            break
    else:
        pytest.fail(f"both workers never served it from disk: {served}, shared disk hits {disk_hits}")
    assert origin.count("/video/big.mp4") == 1
    metrics = await edge.metrics()
    assert metrics[(names.EDGE_CACHE_OBJECTS, (("tier", "memory"),))] == 0
