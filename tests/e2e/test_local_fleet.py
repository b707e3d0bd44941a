"""The whole data path on one machine: ``edgefleet up`` with real origin, edges, balancer and Redis.

One fleet serves the whole module (starting it is the expensive part); the tests run in the order a
shop would live through them, and the last one stops the fleet with Ctrl-C and checks nothing is left.
"""

from __future__ import annotations

import io
import json
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
from edgefleet.runtime.state import RuntimeState, StateError, load_or_create_tokens, read_runtime

T = TypeVar("T")
DEADLINE = 120.0

MANIFEST = {
    "apiVersion": "cdn.edgefleet.io/v1alpha1",
    "kind": "CdnCluster",
    "metadata": {"name": "e2e"},
    "spec": {
        "origin": {
            "storage": {"filesystem": {"hostPath": "/unused-locally"}},
            "defaultTtl": "10m",
            "images": {"widths": [160, 320, 640], "formats": ["avif", "webp", "jpeg"]},
        },
        "edge": {"replicas": {"min": 2, "max": 3}, "cache": {"memory": "32Mi", "disk": "64Mi", "policy": "lru"}},
        "autoscaling": {
            "enabled": True,
            "interval": "1s",
            # A hit ratio that one-off objects filling the caches cannot meet: more edges (more cache) is the answer.
            "targets": {"p95LatencyMs": 1, "hitRatio": 0.5},
            "minRequests": 5,
            "scaleUpStabilization": "0s",
            "scaleDownStabilization": "1h",
            "maxStep": 1,
        },
    },
}


def eventually(probe: Callable[[], T | None], what: str, timeout: float = DEADLINE) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


@dataclass
class Fleet:
    process: subprocess.Popen[bytes]
    state_dir: Path
    upload_token: str

    @property
    def state(self) -> RuntimeState:
        return read_runtime(self.state_dir)

    def get(self, path: str, **headers: str) -> requests.Response:
        return requests.get(self.state.balancer_url + path, headers=headers, timeout=30)

    def upload(self, key: str, body: bytes, tags: str) -> None:
        source = self.state_dir.parent / "upload.bin"
        source.write_bytes(body)
        edgefleet("upload", str(source), "--key", key, "--tags", *tags.split(), state_dir=self.state_dir)

    def log(self) -> str:
        return (self.state_dir / "up.log").read_text(errors="replace")[-4000:]


def edgefleet(*args: str, state_dir: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "edgefleet.cli", *args, "--state-dir", str(state_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"edgefleet {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def jpeg(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "JPEG", quality=90)
    return out.getvalue()


def children_alive(state_dir: Path) -> list[str]:
    """Command lines of live processes that belong to this fleet (they all name its state dir)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(state_dir) in cmdline and "pytest" not in cmdline:
            alive.append(f"{entry.name}: {cmdline[:200]}")
    return alive


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    state_dir = tmp_path_factory.mktemp("fleet") / "state"
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
        yield Fleet(process, state_dir, load_or_create_tokens(state_dir).upload)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def test_fleet_starts_with_the_minimum_number_of_edges(fleet: Fleet) -> None:
    state = fleet.state
    assert len(state.edges) == 2
    assert all(edge.state == "ready" for edge in state.edges)
    assert requests.get(state.balancer_url + "/assets/missing.jpg", timeout=10).status_code == 404


def all_checked_up(fleet: Fleet) -> bool:
    """Every edge of the fleet is in the balancer and passing its health check, as ``edgefleet status`` shows."""
    # The JSON is the runtime state plus what status probed live (not_ready, purge_bus).
    edges = json.loads(edgefleet("status", "--output", "json", state_dir=fleet.state_dir).stdout)["edges"]
    return len(edges) == len(fleet.state.edges) and all(edge["balancer"] == "UP L7OK" for edge in edges)


def test_status_shows_each_edge_as_the_balancer_sees_it(fleet: Fleet) -> None:
    assert len(fleet.state.edges) == 2
    eventually(lambda: all_checked_up(fleet), "status to show both edges up and passing the balancer's health check")
    text = edgefleet("status", state_dir=fleet.state_dir).stdout
    assert "BALANCER" in text and "UP L7OK" in text


def test_full_evicting_caches_under_load_start_a_third_edge_that_joins_the_balancer(fleet: Fleet) -> None:
    fleet.upload("load/blob.bin", os.urandom(2**20), "load")

    def three_edges_serving() -> bool:
        # Every request a new 1 MiB cache key: the memory tiers fill and evict, the hit ratio stays near zero.
        # (Slow misses alone would not do: they are the origin's, and more edges cannot fix them.)
        for _ in range(40):
            fleet.get(f"/assets/load/blob.bin?v={time.monotonic_ns()}")
        return len(fleet.state.edges) == 3

    eventually(three_edges_serving, "the autoscaler to start a third edge", timeout=180)
    third = fleet.state.edges[2].name
    seen = eventually(
        lambda: (
            third in {fleet.get(f"/assets/load/item-{i % 6}.jpg?probe={i}").headers.get("X-Edge") for i in range(60)}
        ),
        f"the balancer to route to {third}",
    )
    assert seen
    decision = fleet.state.last_decision
    assert decision is not None and decision["to"] == 3, decision


def test_first_request_misses_and_second_hits_through_the_balancer(fleet: Fleet) -> None:
    # The autoscaler has just added an edge (the test before): the ring is settled once every edge passes its
    # health check, and a key's owner only changes with the membership.
    eventually(lambda: all_checked_up(fleet), "every edge to be up in the balancer")
    fleet.upload("products/shoe.jpg", jpeg(800, 600, (200, 30, 30)), "sku-1 cat-shoes")
    # ?w=640 is a variant nobody has asked for yet (warm events fetch the plain path only).
    first = fleet.get("/assets/products/shoe.jpg?w=640")
    second = fleet.get("/assets/products/shoe.jpg?w=640")
    assert first.status_code == second.status_code == 200
    assert first.headers["X-Cache"].startswith("MISS")
    assert second.headers["X-Cache"].startswith("HIT"), (
        f"second: {second.headers.get('X-Edge')} {second.headers.get('Cache-Status')}; "
        f"first: {first.headers.get('X-Edge')} {first.headers.get('Cache-Status')}"
    )
    assert first.content == second.content
    assert first.headers["X-Edge"] == second.headers["X-Edge"], "one owner edge per cache key"


def misses_on_all_edges(fleet: Fleet) -> float:
    token = load_or_create_tokens(fleet.state_dir).admin
    total = 0.0
    for edge in fleet.state.edges:
        text = requests.get(f"{edge.admin_url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10).text
        for line in text.splitlines():
            if line.startswith("edgefleet_edge_requests_total{") and 'cache_status="miss"' in line:
                total += float(line.rsplit(" ", 1)[1])
    return total


def test_new_object_is_warmed_through_its_owner_edge_before_shoppers_ask(fleet: Fleet) -> None:
    before = misses_on_all_edges(fleet)
    fleet.upload("products/new-arrival.jpg", jpeg(640, 480, (10, 10, 200)), "sku-2")
    eventually(lambda: misses_on_all_edges(fleet) > before, "the balancer to warm the new object", timeout=30)
    assert fleet.get("/assets/products/new-arrival.jpg").headers["X-Cache"].startswith("HIT")


def test_avif_variant_has_the_requested_width_and_is_cached(fleet: Fleet) -> None:
    first = fleet.get("/assets/products/shoe.jpg?w=320", Accept="image/avif,image/webp,*/*")
    assert first.status_code == 200
    assert first.headers["Content-Type"] == "image/avif"
    image = Image.open(io.BytesIO(first.content))
    assert image.format == "AVIF"
    assert image.size[0] == 320
    again = fleet.get("/assets/products/shoe.jpg?w=320", Accept="image/avif,image/webp,*/*")
    assert again.headers["X-Cache"].startswith("HIT")
    assert again.content == first.content


def test_replacing_an_object_serves_the_new_bytes_next(fleet: Fleet) -> None:
    before = fleet.get("/assets/products/shoe.jpg").content
    fleet.upload("products/shoe.jpg", jpeg(800, 600, (30, 200, 30)), "sku-1 cat-shoes")
    after = eventually(
        lambda: (r := fleet.get("/assets/products/shoe.jpg")).content != before and r,
        "the origin's purge event to reach the owning edge",
        timeout=30,
    )
    assert Image.open(io.BytesIO(after.content)).getpixel((10, 10))[1] > 150, "the green photo is served"


def test_purge_by_tag_is_acknowledged_by_every_edge_and_the_next_request_misses(fleet: Fleet) -> None:
    assert fleet.get("/assets/products/shoe.jpg").headers["X-Cache"].startswith(("HIT", "MISS"))
    assert fleet.get("/assets/products/shoe.jpg").headers["X-Cache"].startswith("HIT")
    result = edgefleet("purge", "--tag", "sku-1", "--wait", state_dir=fleet.state_dir)
    edges = [edge.name for edge in fleet.state.edges]
    for name in edges:
        assert f"{name}" in result.stdout and "NOT acknowledged" not in result.stdout
    assert "purge complete on every edge" in result.stdout
    assert fleet.get("/assets/products/shoe.jpg").headers["X-Cache"].startswith("MISS")


def test_killed_edge_is_restarted_while_requests_keep_succeeding(fleet: Fleet) -> None:
    victim = fleet.state.edges[0]
    assert victim.pid
    os.kill(victim.pid, signal.SIGKILL)
    failures = 0
    for i in range(100):
        if fleet.get(f"/assets/products/shoe.jpg?k={i}").status_code != 200:
            failures += 1
    assert failures == 0, f"{failures} of 100 requests failed while an edge was killed"

    def restarted() -> bool:
        edge = next(e for e in fleet.state.edges if e.name == victim.name)
        return edge.pid != victim.pid and edge.state == "ready" and edge.restarts >= 1

    eventually(restarted, f"{victim.name} to be restarted")


def test_ctrl_c_stops_every_process(fleet: Fleet) -> None:
    pids = dict(fleet.state.processes)
    assert {"origin", "balancer", "redis"} <= set(pids)
    fleet.process.send_signal(signal.SIGINT)
    assert fleet.process.wait(timeout=60) == 0, fleet.log()
    for name, pid in pids.items():
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower(), (
            f"{name} (pid {pid}) survived Ctrl-C"
        )
    assert children_alive(fleet.state_dir) == []
    assert fleet.state_dir.exists(), "the state directory is kept for the next run"
