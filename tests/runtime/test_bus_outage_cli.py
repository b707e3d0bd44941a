"""The local runtime's CLI and supervision when the purge bus is down: one clear line, never a
traceback; an upload whose purge is pending fails or waits; ``edgefleet up`` restarts a dead Redis.

Real parts: the ``edgefleet`` CLI as a subprocess, a real origin and a real Redis on loopback.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
import yaml
from edgefleet_edge.server import Edge, EdgeSettings
from edgefleet_origin.server import RunningOrigin, running_origin
from edgefleet_origin.settings import FileLocation, OriginSettings

from edgefleet.api import CdnCluster
from edgefleet.bus import PurgeBus
from edgefleet.embedded_redis import EmbeddedRedis, EmbeddedRedisError, free_port
from edgefleet.runtime.fleet import LocalFleet
from edgefleet.runtime.plan import make_plan
from edgefleet.runtime.processes import ManagedProcess
from edgefleet.runtime.state import EdgeState, RuntimeState, load_or_create_tokens, write_runtime

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = "shop"
DEADLINE_SECONDS = 30.0


def start(server: EmbeddedRedis) -> None:
    try:
        server.start()
    except EmbeddedRedisError as exc:
        pytest.fail(f"a Redis server is needed: {exc}")


@pytest.fixture
def late_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(data_dir=tmp_path / "redis", port=free_port())
    yield server
    server.stop()


def fake_runtime(state_dir: Path, redis_url: str, origin_url: str = "http://127.0.0.1:1") -> None:
    """A ``runtime.json`` as ``edgefleet up`` writes it, owned by this (live) test process."""
    state_dir.mkdir(parents=True, exist_ok=True)
    write_runtime(state_dir, RuntimeState(
        pid=os.getpid(), cluster=CLUSTER, redis_url=redis_url, balancer_url="http://127.0.0.1:1",
        balancer_admin_url="http://127.0.0.1:1", origin_url=origin_url, prometheus_url=None,
    ))  # fmt: skip


async def cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edgefleet.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), DEADLINE_SECONDS)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def one_clear_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


async def test_purge_with_the_bus_down_prints_one_line_and_fails(tmp_path: Path) -> None:
    fake_runtime(tmp_path / "state", f"redis://127.0.0.1:{free_port()}/0")
    code, _, err = await cli("purge", "--path", "/assets/a.jpg", "--state-dir", str(tmp_path / "state"))
    assert code == 1
    line = one_clear_line(err)
    assert line.startswith("edgefleet purge:") and "unreachable" in line, line


async def test_upload_to_an_unreachable_origin_prints_one_line(tmp_path: Path) -> None:
    fake_runtime(tmp_path / "state", f"redis://127.0.0.1:{free_port()}/0", f"http://127.0.0.1:{free_port()}")
    (tmp_path / "a.jpg").write_bytes(b"x")
    code, _, err = await cli(
        "upload", str(tmp_path / "a.jpg"), "--key", "a.jpg", "--state-dir", str(tmp_path / "state")
    )
    assert code == 1
    assert "cannot reach the origin" in one_clear_line(err)


@pytest.fixture
async def origin_and_state(tmp_path: Path, late_redis: EmbeddedRedis) -> AsyncIterator[tuple[RunningOrigin, Path]]:
    """A real origin on a bus that is not running yet, and a state dir that points the CLI at it."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    tokens = load_or_create_tokens(state_dir)
    settings = OriginSettings(
        storage=FileLocation(tmp_path / "objects"), listen=("127.0.0.1", 0), upload_token=tokens.upload,
        redis_url=late_redis.url, cluster=CLUSTER, variant_cache_dir=tmp_path / "variants", image_workers=1,
    )  # fmt: skip
    async with running_origin(settings) as origin:
        fake_runtime(state_dir, late_redis.url, origin.url)
        yield origin, state_dir


async def test_upload_fails_clearly_when_its_purge_is_still_pending(
    origin_and_state: tuple[RunningOrigin, Path], tmp_path: Path
) -> None:
    _, state_dir = origin_and_state
    (tmp_path / "a.jpg").write_bytes(b"new bytes")
    code, out, err = await cli("upload", str(tmp_path / "a.jpg"), "--key", "p/a.jpg", "--state-dir", str(state_dir))
    assert code != 0, out
    line = one_clear_line(err)
    assert "stored p/a.jpg" in line and "pending" in line and "--wait" in line, line


async def test_upload_with_wait_returns_once_the_bus_took_the_purge(
    origin_and_state: tuple[RunningOrigin, Path], late_redis: EmbeddedRedis, tmp_path: Path
) -> None:
    origin, state_dir = origin_and_state
    (tmp_path / "a.jpg").write_bytes(b"bytes")
    uploading = asyncio.create_task(
        cli("upload", str(tmp_path / "a.jpg"), "--key", "p/a.jpg", "--wait", "--state-dir", str(state_dir))
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while not origin.context.notifier.backlog().pending:
        assert loop.time() < deadline, "the upload never reached the origin's outbox"
        assert not uploading.done(), await uploading
        await asyncio.sleep(0.05)
    await asyncio.to_thread(start, late_redis)
    code, out, err = await uploading
    assert code == 0, err
    assert "uploaded" in out
    client = aioredis.Redis.from_url(late_redis.url)
    try:
        warmed = [m.paths for _, m in await PurgeBus(client, CLUSTER).read_warms()]
    finally:
        await client.aclose()
    assert warmed == [("/assets/p/a.jpg",)]


def local_cluster() -> CdnCluster:
    return CdnCluster.model_validate(yaml.safe_load((ROOT / "examples/cdncluster-local.yaml").read_text()))


async def test_local_fleet_restarts_a_dead_embedded_redis_with_its_streams(tmp_path: Path) -> None:
    plan = make_plan(local_cluster(), tmp_path, free_port())
    server = EmbeddedRedis(data_dir=tmp_path / "redis", port=plan.ports.redis)
    await asyncio.to_thread(start, server)
    fleet = LocalFleet(plan, server.url, load_or_create_tokens(tmp_path), server)
    # Stand-ins that stay alive, so only Redis needs supervising here.
    fleet.origin = ManagedProcess("origin", ["sleep", "600"], tmp_path / "origin.log")
    fleet.balancer = ManagedProcess("balancer", ["sleep", "600"], tmp_path / "balancer.log")
    fleet.origin.start()
    fleet.balancer.start()
    try:
        client = redis.Redis.from_url(server.url)
        client.xadd("edgefleet:local:purges", {"v": "1"})
        client.close()
        old_pid = server.pid
        assert old_pid is not None
        os.kill(old_pid, signal.SIGKILL)
        await asyncio.to_thread(lambda: server._process.wait() if server._process else None)  # type: ignore[func-returns-value]

        assert await fleet.supervise_once() == ["redis"]

        assert server.pid not in {None, old_pid}
        client = redis.Redis.from_url(server.url)
        assert client.xlen("edgefleet:local:purges") == 1
        client.close()
    finally:
        fleet.stop()
    assert not server.alive()


async def test_status_says_which_edges_cannot_apply_purges_and_why(tmp_path: Path) -> None:
    dead_bus = f"redis://127.0.0.1:{free_port()}/0"
    edge = Edge(EdgeSettings(
        listen=("127.0.0.1", 0), admin_listen=("127.0.0.1", 0), origin="http://127.0.0.1:1", memory=2**20, disk=0,
        cache_dir=None, name="edge-0", admin_token="t", redis=dead_bus, cluster=CLUSTER,
    ))  # fmt: skip
    await edge.start()
    try:
        state_dir = tmp_path / "state"
        fake_runtime(state_dir, dead_bus)
        state = RuntimeState.from_json((state_dir / "runtime.json").read_text())
        state.edges = [EdgeState("edge-0", f"http://127.0.0.1:{edge.data_port}",
                                 f"http://127.0.0.1:{edge.admin_port}", os.getpid(), "ready")]  # fmt: skip
        write_runtime(state_dir, state)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_SECONDS
        while True:
            code, out, err = await cli("status", "--state-dir", str(state_dir))
            if "edge-0: not ready: purge bus unreachable" in out or loop.time() > deadline:
                break
        assert code == 0, err
        assert "edge-0: not ready: purge bus unreachable" in out, out
        assert "purge bus: UNREACHABLE" in out, out
    finally:
        await edge.stop()
