"""A whole local fleet (``edgefleet up``: origin, two edges, balancer, embedded Redis) living through a
purge bus outage: a change made while Redis hangs is kept in the origin's outbox and purged from every
edge once Redis answers; a killed Redis is restarted by ``edgefleet up`` and purges work again.

Before: the upload printed success, nothing retried its purge and the old bytes stayed HITs for good;
a dead embedded Redis stayed dead.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
import requests
import yaml
from PIL import Image

from edgefleet.embedded_redis import free_port
from edgefleet.runtime.state import RuntimeState, StateError, read_runtime

T = TypeVar("T")
DEADLINE = 90.0

MANIFEST = {
    "apiVersion": "cdn.edgefleet.io/v1alpha1",
    "kind": "CdnCluster",
    "metadata": {"name": "outage"},
    "spec": {
        "origin": {"storage": {"filesystem": {"hostPath": "/unused-locally"}}, "defaultTtl": "1h"},
        "edge": {"replicas": {"min": 2, "max": 2}, "cache": {"memory": "16Mi", "disk": "32Mi"}},
        "autoscaling": {"enabled": False},
    },
}


def eventually(probe: Callable[[], T | None], what: str, timeout: float = DEADLINE) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def jpeg(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(out, "JPEG", quality=90)
    return out.getvalue()


@dataclass
class Fleet:
    process: subprocess.Popen[bytes]
    state_dir: Path

    @property
    def state(self) -> RuntimeState:
        return read_runtime(self.state_dir)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "edgefleet.cli", *args, "--state-dir", str(self.state_dir)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    def upload(self, key: str, body: bytes, *flags: str) -> subprocess.CompletedProcess[str]:
        source = self.state_dir.parent / "upload.jpg"
        source.write_bytes(body)
        return self.cli("upload", str(source), "--key", key, *flags)

    def from_every_edge(self, path: str) -> list[bytes]:
        return [requests.get(edge.url + path, timeout=30).content for edge in self.state.edges]

    def log(self) -> str:
        return (self.state_dir / "up.log").read_text(errors="replace")[-4000:]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    state_dir = tmp_path_factory.mktemp("outage") / "state"
    state_dir.mkdir()
    manifest = state_dir.parent / "cdncluster.yaml"
    manifest.write_text(yaml.safe_dump(MANIFEST))
    base = free_port()
    while base > 60000:
        base = free_port()
    log = (state_dir / "up.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "edgefleet.cli", "up", "-f", str(manifest), "--state-dir", str(state_dir),
         "--port", str(base), "--no-screen", "--no-prometheus"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip

    def running() -> RuntimeState | None:
        assert process.poll() is None, f"edgefleet up exited early:\n{(state_dir / 'up.log').read_text()[-4000:]}"
        try:
            return read_runtime(state_dir)
        except StateError:
            return None

    try:
        eventually(running, "edgefleet up to start")
        yield Fleet(process, state_dir)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def test_change_made_while_redis_hangs_is_purged_from_every_edge_when_it_answers(fleet: Fleet) -> None:
    old, new = jpeg((200, 0, 0)), jpeg((0, 0, 200))
    path = "/assets/products/outage.jpg"
    assert fleet.upload("products/outage.jpg", old).returncode == 0
    assert fleet.from_every_edge(path) == [old, old]
    assert fleet.from_every_edge(path) == [old, old]  # cached on both edges now

    redis_pid = fleet.state.processes["redis"]
    os.kill(redis_pid, signal.SIGSTOP)
    try:
        result = fleet.upload("products/outage.jpg", new)
    finally:
        os.kill(redis_pid, signal.SIGCONT)
    assert result.returncode != 0, result.stdout
    assert len(result.stderr.strip().splitlines()) == 1 and "pending" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr

    eventually(lambda: fleet.from_every_edge(path) == [new, new], "every edge to serve the new bytes")


def test_killed_redis_is_restarted_and_purges_reach_every_edge_again(fleet: Fleet) -> None:
    before = fleet.state.processes["redis"]
    os.kill(before, signal.SIGKILL)
    eventually(lambda: fleet.state.processes.get("redis") not in {None, before}, "edgefleet up to restart Redis")
    eventually(lambda: all(e.state == "ready" for e in fleet.state.edges), "the edges to be ready")

    def purged_everywhere() -> bool:
        result = fleet.cli("purge", "--path", "/assets/products/outage.jpg", "--wait", "--timeout", "10s")
        return result.returncode == 0 and "purge complete on every edge" in result.stdout

    eventually(purged_everywhere, f"a purge to be acknowledged by every edge:\n{fleet.log()}")
    status = fleet.cli("status")
    assert status.returncode == 0 and "UNREACHABLE" not in status.stdout, status.stdout
