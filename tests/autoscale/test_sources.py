"""Metric sources against real parts: edges' /metrics over HTTP, and a real Prometheus scraping them."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web
from edgefleet_edge.metrics import EdgeMetrics
from edgefleet_edge.store import Store
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from edgefleet.autoscale.decision import Sample
from edgefleet.autoscale.sources import DirectScrapeSource, MetricsUnavailable, PrometheusSource, quantile_from_buckets
from edgefleet.embedded_redis import free_port
from tests.conftest import require

DEADLINE = 60.0


class FakeEdge:
    """An HTTP server exposing the real edge metric registry, driven by the test instead of traffic."""

    def __init__(self) -> None:
        self.store = Store(1000, 0, None)
        self.metrics = EdgeMetrics(self.store)
        self.port = free_port()
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def serve(self, hits: int, misses: int, latency: float) -> None:
        for status, count in (("hit", hits), ("miss", misses)):
            for _ in range(count):
                self.metrics.requests.labels(status, "200").inc()
                self.metrics.duration.labels(status).observe(latency)
        for _ in range(misses):
            self.metrics.origin_requests.labels("200").inc()

    async def start(self) -> None:
        async def metrics(request: web.Request) -> web.Response:
            if request.headers.get("Authorization") != "Bearer t":
                return web.Response(status=401)
            return web.Response(
                body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
            )

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def edges() -> AsyncIterator[list[FakeEdge]]:
    fleet = [FakeEdge(), FakeEdge()]
    for edge in fleet:
        await edge.start()
    yield fleet
    for edge in fleet:
        await edge.stop()


def test_quantile_interpolates_inside_the_bucket_like_promql() -> None:
    buckets = {0.01: 50.0, 0.1: 90.0, 1.0: 100.0, float("inf"): 100.0}
    assert quantile_from_buckets(buckets, 0.5) == pytest.approx(0.01)
    assert quantile_from_buckets(buckets, 0.95) == pytest.approx(0.1 + 0.9 * 0.5)
    assert quantile_from_buckets({}, 0.95) is None


async def test_direct_scrape_computes_rates_hit_ratio_and_p95_between_scrapes(edges: list[FakeEdge]) -> None:
    source = DirectScrapeSource(lambda: [e.url for e in edges], token="t")
    first = await source.sample()
    assert first.p95_latency_ms is None, "one scrape has no rate yet: no data, never a guess"
    edges[0].serve(hits=90, misses=10, latency=0.004)
    edges[1].serve(hits=60, misses=40, latency=0.2)
    second = await source.sample()
    assert second.hit_ratio == pytest.approx(150 / 200)
    assert second.p95_latency_ms is not None and 100 < second.p95_latency_ms <= 250
    assert second.origin_requests_per_second is not None and second.origin_requests_per_second > 0


async def test_direct_scrape_separates_hit_from_miss_latency_and_counts_requests(edges: list[FakeEdge]) -> None:
    """Fast hits and slow misses: the edges are fine, the origin is what is slow."""
    source = DirectScrapeSource(lambda: [e.url for e in edges], token="t")
    await source.sample()
    edges[0].serve(hits=100, misses=0, latency=0.003)
    edges[1].serve(hits=0, misses=30, latency=2.0)
    sample = await source.sample()
    assert sample.requests == 130
    assert sample.hit_p95_latency_ms is not None and sample.hit_p95_latency_ms <= 5
    assert sample.miss_p95_latency_ms is not None and sample.miss_p95_latency_ms >= 1000
    assert sample.window_seconds > 0


async def test_direct_scrape_without_any_answering_edge_is_unavailable() -> None:
    source = DirectScrapeSource(lambda: [f"http://127.0.0.1:{free_port()}/metrics"], token="t")
    with pytest.raises(MetricsUnavailable):
        await source.sample()


async def test_direct_scrape_with_the_wrong_token_counts_as_no_data(edges: list[FakeEdge]) -> None:
    with pytest.raises(MetricsUnavailable):
        await DirectScrapeSource(lambda: [e.url for e in edges], token="wrong").sample()


# ---- a real Prometheus ----------------------------------------------------------------------------------


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[object]:
    binary = shutil.which("prometheus")
    require(binary is not None, "Prometheus (Debian package 'prometheus')")
    assert binary is not None
    processes: list[subprocess.Popen[bytes]] = []

    def start(targets: list[str]) -> str:
        port = free_port()
        token = tmp_path / "token"
        token.write_text("t")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "edge", "authorization": {"credentials_file": str(token)},
                                "static_configs": [{"targets": targets}]}],
        }  # fmt: skip
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        with (tmp_path / "prometheus.log").open("wb") as log:
            processes.append(
                subprocess.Popen(
                    [binary, f"--config.file={tmp_path / 'prometheus.yml'}",
                     f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                    stdout=log, stderr=subprocess.STDOUT,
                )
            )  # fmt: skip
        return f"http://127.0.0.1:{port}"

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=20)


async def until(probe: object, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not await probe():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.25)


async def test_prometheus_source_reads_the_fleet_through_promql(
    edges: list[FakeEdge], prometheus_factory: object
) -> None:
    url = prometheus_factory([f"127.0.0.1:{e.port}" for e in edges])  # type: ignore[operator]

    async def scraping() -> bool:
        try:
            async with aiohttp.ClientSession() as session, session.get(f"{url}/api/v1/targets") as response:
                targets = (await response.json())["data"]["activeTargets"]
        except (aiohttp.ClientError, KeyError, ValueError):
            return False
        return len(targets) == 2 and all(t["health"] == "up" for t in targets)

    await until(scraping, "Prometheus to scrape both edges")
    source = PrometheusSource(url, selector='job="edge"', window="30s")
    latest: list[Sample] = []

    async def has_rates() -> bool:
        edges[0].serve(hits=80, misses=20, latency=0.3)
        edges[1].serve(hits=80, misses=20, latency=0.3)
        sample = await source.sample()
        latest.append(sample)
        return sample.hit_ratio is not None and sample.p95_latency_ms is not None

    await until(has_rates, "Prometheus to have two scrapes with traffic between them")
    sample = latest[-1]
    assert sample.hit_ratio == pytest.approx(0.8, abs=0.05)
    assert sample.p95_latency_ms is not None and 250 <= sample.p95_latency_ms <= 500
    assert sample.origin_requests_per_second is not None and sample.origin_requests_per_second > 0
    assert sample.requests is not None and sample.requests > 0 and sample.window_seconds == 30
    for split in (sample.hit_p95_latency_ms, sample.miss_p95_latency_ms):
        assert split is not None and 250 <= split <= 500


async def test_unreachable_prometheus_is_unavailable_not_zero() -> None:
    with pytest.raises(MetricsUnavailable, match="did not answer"):
        await PrometheusSource(f"http://127.0.0.1:{free_port()}", timeout=2).sample()
