"""Summaries and an HTML report of a load run (plots are inline SVG: no scripts, no network)."""

from __future__ import annotations

import html
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from edgefleet.charts import Chart, Marker, Series, render_figure

from .runner import HIT_STATUSES, RunResult, Sample
from .workload import Phase


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Summary:
    requests: int
    errors: int
    requests_per_second: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    hit_ratio: float
    origin_offload: float
    """Share of requests answered without a trip to the origin."""
    bytes: int
    edges_seen: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def summarise(result: RunResult) -> Summary:
    samples = result.samples
    ok = [s for s in samples if s.status and s.status < 500]
    lat = [s.latency * 1000 for s in ok]
    cached = [s for s in ok if s.cache != "NONE"]
    hits = sum(1 for s in cached if s.cache in HIT_STATUSES)
    went_to_origin = sum(1 for s in cached if s.cache not in HIT_STATUSES)
    return Summary(
        requests=len(samples),
        errors=len(samples) - len(ok),
        requests_per_second=len(samples) / result.duration if result.duration else 0.0,
        p50_ms=percentile(lat, 50),
        p95_ms=percentile(lat, 95),
        p99_ms=percentile(lat, 99),
        hit_ratio=hits / len(cached) if cached else math.nan,
        origin_offload=1 - went_to_origin / len(cached) if cached else math.nan,
        bytes=sum(s.size for s in samples),
        edges_seen=len({s.edge for s in ok if s.edge}),
    )


def format_summary(summary: Summary) -> str:
    return "\n".join(
        [
            f"requests        {summary.requests} ({summary.errors} errors)",
            f"throughput      {summary.requests_per_second:.1f} req/s",
            f"latency         p50 {summary.p50_ms:.1f} ms  p95 {summary.p95_ms:.1f} ms  p99 {summary.p99_ms:.1f} ms",
            f"hit ratio       {summary.hit_ratio:.3f}",
            f"origin offload  {summary.origin_offload:.3f}",
            f"bytes           {summary.bytes}",
            f"edges seen      {summary.edges_seen}",
        ]
    )


def timeline(samples: Sequence[Sample], bucket: float = 1.0) -> list[dict[str, float]]:
    """Per-``bucket`` seconds: p50/p95 latency (ms), hit ratio, requests/s and distinct edges."""
    buckets: dict[int, list[Sample]] = defaultdict(list)
    for sample in samples:
        buckets[int(sample.at // bucket)].append(sample)
    rows = []
    for index in sorted(buckets):
        group = buckets[index]
        lat = [s.latency * 1000 for s in group if s.status]
        cached = [s for s in group if s.cache not in ("NONE", "ERROR")]
        rows.append(
            {
                "t": index * bucket,
                "p50_ms": percentile(lat, 50),
                "p95_ms": percentile(lat, 95),
                "hit_ratio": sum(s.cache in HIT_STATUSES for s in cached) / len(cached) if cached else math.nan,
                "rps": len(group) / bucket,
                "edges": float(len({s.edge for s in group if s.edge and s.status})),
            }
        )
    return rows


def timeline_markers(samples: Sequence[Sample], rows: Sequence[dict[str, float]]) -> list[Marker]:
    """Events visible in the run itself: each traffic phase's start, and each time more edges served."""
    markers: list[Marker] = []
    # Each phase once, where its first response finished: responses of concurrent requests from two phases
    # interleave around a phase change, and a marker per switch would bury the chart.
    first: dict[Phase, float] = {}
    for sample in samples:
        first[sample.phase] = min(first.get(sample.phase, sample.at), sample.at)
    opening = min(first, key=lambda phase: first[phase]) if first else None
    for phase, at in sorted(first.items(), key=lambda item: item[1]):
        if phase != opening:
            markers.append(Marker(at, PHASE_EVENTS.get(phase, f"{phase} starts")))
    most = 0.0
    for row in rows:
        if most and row["edges"] > most:
            markers.append(Marker(row["t"], f"edge added ({row['edges']:.0f} serving)"))
        most = max(most, row["edges"])
    return markers


PHASE_EVENTS = {Phase.FLASH_SALE: "flash sale starts", Phase.CRAWLER: "crawler arrives", Phase.NORMAL: "browsing"}

SUMMARY_LABELS: dict[str, tuple[str, str]] = {
    "requests": ("Requests sent", ""),
    "errors": ("Failed requests", ""),
    "requests_per_second": ("Throughput", "req/s"),
    "p50_ms": ("Median latency (p50)", "ms"),
    "p95_ms": ("95th percentile latency (p95)", "ms"),
    "p99_ms": ("99th percentile latency (p99)", "ms"),
    "hit_ratio": ("Cache hit ratio", "%"),
    "origin_offload": ("Origin offload", "%"),
    "bytes": ("Bytes received", "MB"),
    "edges_seen": ("Edges that answered", ""),
}


def _summary_value(name: str, value: float) -> str:
    _, unit = SUMMARY_LABELS[name]
    if math.isnan(value):
        return "no data"
    if unit == "%":
        return f"{value * 100:.1f}%"
    if unit == "MB":
        return f"{value / 1e6:.1f} MB"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.1f} {unit}"


def report_charts(rows: Sequence[dict[str, float]], markers: Sequence[Marker], duration: float) -> list[Chart]:
    """The four charts of a run, with the captions people read under them."""
    span = (0.0, duration)

    def points(name: str, scale: float = 1.0) -> list[tuple[float, float]]:
        return [(r["t"], r[name] * scale) for r in rows]

    return [
        Chart("Latency", "ms", [Series("median (p50)", points("p50_ms")), Series("95th percentile", points("p95_ms"))],
              "How long shoppers waited for each response, per second of the run: half of the requests were "
              "faster than the median line, 95 in 100 faster than the upper line.", markers, chart_id="latency",
              time_range=span),
        Chart("Cache hit ratio", "%", [Series("answered from cache", points("hit_ratio", 100.0))],
              "The share of cacheable requests the edges answered from their cache without asking the origin; "
              "dips follow new content (a flash sale) and purges.", markers, y_max=100.0, chart_id="hit-ratio",
              time_range=span),
        Chart("Edges serving", "edges", [Series("edges that answered", points("edges"))],
              "How many different edges answered requests in each second: it rises when the autoscaler "
              "adds an edge.", markers, chart_id="edges", time_range=span, whole_numbers=True),
        Chart("Requests per second", "req/s", [Series("requests", points("rps"))],
              "How many requests the load generator completed each second.", markers, chart_id="requests",
              time_range=span),
    ]  # fmt: skip


def html_report(result: RunResult, title: str = "edgefleet bench", events: Sequence[Marker] = ()) -> str:
    """A self-contained page: a summary table and charts with event markers (``events``: seconds since
    the run started, e.g. a purge the caller issued)."""
    summary = summarise(result)
    rows = timeline(result.samples)
    markers = sorted([*timeline_markers(result.samples, rows), *events], key=lambda m: m.at)
    charts = "".join(render_figure(chart) for chart in report_charts(rows, markers, result.duration))
    table = "".join(
        f'<tr><th scope="row">{html.escape(SUMMARY_LABELS[k][0])}</th><td>{html.escape(_summary_value(k, v))}</td></tr>'
        for k, v in summary.as_dict().items()
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:1em auto;max-width:760px;padding:0 1em;color:#222}"
        "th{text-align:left;padding-right:1em;font-weight:normal;color:#444}td{font-variant-numeric:tabular-nums}"
        "figure{margin:1.5em 0}figcaption{color:#444;font-size:.95em}svg{display:block;border:1px solid #eee}"
        "</style></head><body>"
        f"<h1>{html.escape(title)}</h1><table>{table}</table>{charts}</body></html>\n"
    )
