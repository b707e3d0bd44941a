"""Load reports: the numbers are right, and the HTML page renders in a real browser without errors."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from aiohttp import web

from edgefleet.charts import Marker
from edgefleet.loadgen.report import html_report, percentile, summarise
from edgefleet.loadgen.runner import PhasePlan, RunResult, Sample, run_load
from edgefleet.loadgen.workload import Catalogue, Phase, Workload
from tests.conftest import require


def sample(at: float, latency_ms: float, cache: str, status: int = 200, edge: str = "e1") -> Sample:
    return Sample(at, latency_ms / 1000, status, cache, edge, 100, Phase.NORMAL)


@pytest.mark.parametrize(
    ("q", "expected"), [(50, 5.0), (90, 9.0), (99, 10.0), (100, 10.0), (1, 1.0)], ids=["p50", "p90", "p99", "max", "p1"]
)
def test_percentile_uses_nearest_rank(q: float, expected: float) -> None:
    assert percentile([float(v) for v in range(10, 0, -1)], q) == expected


def test_summary_counts_hits_misses_and_errors() -> None:
    result = RunResult(
        duration=2.0,
        samples=[
            sample(0.1, 1, "HIT"),
            sample(0.2, 2, "HIT"),
            sample(0.3, 50, "MISS"),
            sample(1.1, 3, "STALE", edge="e2"),
            sample(1.2, 0, "ERROR", status=0, edge="ConnectionError"),
        ],
    )
    summary = summarise(result)
    assert summary.requests == 5
    assert summary.errors == 1
    assert summary.hit_ratio == pytest.approx(3 / 4)
    assert summary.origin_offload == pytest.approx(3 / 4)
    assert summary.edges_seen == 2
    assert summary.requests_per_second == pytest.approx(2.5)


async def test_load_run_records_cache_status_from_a_real_server(unused_tcp_port: int) -> None:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.path_qs)
        cache = "HIT" if len(seen) % 2 else "MISS"
        return web.Response(body=b"x" * 10, headers={"X-Cache": cache, "X-Edge": "edge-0"})

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", unused_tcp_port)
    await site.start()
    try:
        result = await run_load(
            f"http://127.0.0.1:{unused_tcp_port}",
            Workload(Catalogue(products=10)),
            duration=30.0,
            concurrency=4,
            plan=(PhasePlan(Phase.NORMAL, 1.0),),
            max_requests=40,
        )
    finally:
        await runner.cleanup()
    assert len(result.samples) == len(seen) == 40
    assert summarise(result).hit_ratio == pytest.approx(0.5)
    assert all(s.edge == "edge-0" for s in result.samples)


def test_html_report_renders_in_headless_chromium_without_console_errors(tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    require(browser is not None, "Chromium (Debian package 'chromium') to render the HTML report")
    assert browser is not None
    samples = [sample(i * 0.1, 1 + i % 7, "HIT" if i % 3 else "MISS", edge=f"e{i % 2}") for i in range(100)]
    page = tmp_path / "report.html"
    page.write_text(html_report(RunResult(duration=10.0, samples=samples)))
    shot = tmp_path / "report.png"
    completed = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=800,1400",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert shot.exists() and shot.stat().st_size > 5000, "a screenshot with content was produced"
    console = [line for line in completed.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == [], "the page logged to the console: " + "\n".join(console)


def run_with_a_flash_sale_and_a_new_edge() -> RunResult:
    samples = []
    for i in range(200):
        at = i * 0.1
        phase = Phase.NORMAL if at < 10 else Phase.FLASH_SALE
        edge = f"e{i % 2}" if at < 14 else f"e{i % 3}"
        samples.append(Sample(at, (2 + i % 9) / 1000, 200, "HIT" if i % 4 else "MISS", edge, 100, phase))
    return RunResult(duration=20.0, samples=samples)


def visible_text(page: str) -> str:
    return re.sub(r"<[^>]+>", " ", page)


def test_report_uses_human_labels_and_units_not_field_names() -> None:
    page = html_report(run_with_a_flash_sale_and_a_new_edge())
    text = visible_text(page)
    for field_name in ("requests_per_second", "p95_ms", "p50_ms", "hit_ratio", "origin_offload", "edges_seen"):
        assert field_name not in text, f"{field_name} shown to people"
    assert "Throughput" in text and "req/s" in text
    assert "95th percentile latency (p95)" in text
    assert re.search(r"Cache hit ratio\s+75\.0%", text), "ratios are percentages"
    assert "e+" not in text and "e-0" not in text, "no exponents"


def test_report_charts_have_ticks_time_labels_markers_and_a_sentence() -> None:
    page = html_report(run_with_a_flash_sale_and_a_new_edge(), events=[Marker(12.0, "purge of tag sku-1")])
    charts = re.findall(r"<figure.*?</figure>", page)
    assert len(charts) == 4
    for figure in charts:
        texts = re.findall(r">([^<>]+)</text>", figure)
        assert "0 s" in texts and "10 s" in texts and "20 s" in texts, "time ticks in seconds"
        assert "flash sale starts" in texts, "the flash sale is marked"
        assert "purge of tag sku-1" in texts, "the caller's purge is marked"
        assert any(t.startswith("edge added") for t in texts), "the third edge is marked"
        caption = re.search(r"<figcaption>(.+?)</figcaption>", figure)
        assert caption and len(caption.group(1).split()) >= 8, "a sentence under each chart"
    latency = charts[0]
    assert re.search(r">\d+(\.\d+)? ms</text>", latency), "latency ticks carry their unit"
    hit = charts[1]
    assert ">100%</text>" in hit and ">0%</text>" in hit


def test_each_phase_is_marked_once_even_when_responses_interleave() -> None:
    samples = [
        Sample(at, 0.002, 200, "HIT", "e0", 100, phase)
        for at, phase in [(0.1, Phase.NORMAL), (9.9, Phase.FLASH_SALE), (10.0, Phase.NORMAL), (10.1, Phase.FLASH_SALE),
                          (10.2, Phase.NORMAL), (15.0, Phase.CRAWLER), (15.1, Phase.FLASH_SALE), (16.0, Phase.CRAWLER)]
    ]  # fmt: skip
    page = html_report(RunResult(duration=20.0, samples=samples))
    latency = re.findall(r"<figure.*?</figure>", page)[0]
    texts = re.findall(r">([^<>]+)</text>", latency)
    assert texts.count("flash sale starts") == 1
    assert texts.count("crawler arrives") == 1
    assert "browsing" not in texts, "the opening phase is not an event"
