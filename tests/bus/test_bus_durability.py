"""The purge bus's history: the managed Redis keeps its streams across restarts when persistence is
asked for (rendered PersistentVolumeClaim, append-only file fsynced), and a Redis that lost its data is
told apart from one that did not (the bus epoch), so the operator can say so."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import redis
import redis.asyncio as aioredis
import yaml
from edgefleet_operator.render import render

from edgefleet.api import CdnCluster
from edgefleet.bus import PurgeBus, PurgeMessage
from edgefleet.embedded_redis import free_port, redis_server_executable

ROOT = Path(__file__).resolve().parents[2]


def cluster(**persistence: Any) -> CdnCluster:
    body: dict[str, Any] = yaml.safe_load((ROOT / "examples/cdncluster.yaml").read_text())
    body["metadata"].update(namespace="shop", uid="0c9f5a58-6d1c-4b5e-9d43-7a1b2c3d4e5f", generation=1)
    if persistence:
        body["spec"].setdefault("purgeBus", {})["persistence"] = persistence
    return CdnCluster.model_validate(body)


def redis_objects(c: CdnCluster) -> dict[str, dict[str, Any]]:
    return {m["kind"]: m for m in render(c) if m["metadata"]["name"] in {"shop-redis", "shop-redis-data"}}


def test_managed_redis_keeps_its_stream_on_a_claim_when_persistence_is_asked() -> None:
    objects = redis_objects(cluster(enabled=True, size="5Gi", storageClassName="fast-ssd"))
    claim = objects["PersistentVolumeClaim"]
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "5Gi"}},
        "storageClassName": "fast-ssd",
    }
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "shop-redis-data"}} in pod["volumes"]
    args = pod["containers"][0]["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--appendfsync") + 1] == "always"
    assert objects["Deployment"]["spec"]["strategy"] == {"type": "Recreate"}
    for manifest in objects.values():
        kubernetes_validate.validate(manifest, "1.37.0", strict=True)


def test_managed_redis_without_persistence_renders_no_claim() -> None:
    objects = redis_objects(cluster())
    assert "PersistentVolumeClaim" not in objects
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    assert {"name": "data", "emptyDir": {}} in pod["volumes"]


def test_rendered_redis_arguments_keep_the_stream_through_a_kill(tmp_path: Path) -> None:
    """The very arguments the operator renders, given to a real redis-server that is then SIGKILLed."""
    [container] = redis_objects(cluster(enabled=True))["Deployment"]["spec"]["template"]["spec"]["containers"]
    args = [a if a != "/data" else str(tmp_path) for a in container["args"]]
    port = free_port()

    def serve() -> tuple[subprocess.Popen[bytes], redis.Redis]:
        process = subprocess.Popen([redis_server_executable(), *args, "--bind", "127.0.0.1", "--port", str(port)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        client = redis.Redis(port=port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                return process, client
            except redis.ConnectionError:
                assert process.poll() is None and time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)  # polling readiness under a deadline

    process, client = serve()
    try:
        entry = client.xadd("edgefleet:shop:purges", {"v": "1", "kind": "purge", "data": "{}"})
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        client.close()
        process, client = serve()
        assert [e[0] for e in client.xrange("edgefleet:shop:purges")] == [entry]
    finally:
        client.close()
        process.kill()
        process.wait()


def test_spec_rejects_an_unknown_fsync_policy() -> None:
    with pytest.raises(ValueError, match="fsync"):
        cluster(enabled=True, fsync="never")


@pytest.fixture
async def bus(redis_url: str) -> AsyncIterator[PurgeBus]:
    client = aioredis.Redis.from_url(redis_url)
    yield PurgeBus(client, cluster="shop")
    await client.aclose()


async def test_bus_epoch_is_stable_while_redis_keeps_its_data(bus: PurgeBus) -> None:
    first = await bus.history()
    assert not first.lost
    await bus.publish_purge(PurgeMessage(purge_id="p", all=True))
    again = await bus.history(first.epoch)
    assert again == (first.epoch, False)


async def test_bus_epoch_changes_when_redis_lost_its_data(bus: PurgeBus) -> None:
    before = await bus.history()
    await bus.client.flushdb()  # what a pod rescheduled onto an emptyDir looks like
    after = await bus.history(before.epoch)
    assert after.lost and after.epoch != before.epoch
