"""Summaries and an HTML report of a load run (plots are inline SVG: no scripts, no network)."""

from __future__ import annotations

import html
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from .runner import HIT_STATUSES, RunResult, Sample


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


def _svg_chart(title: str, rows: list[dict[str, float]], series: list[tuple[str, str]], unit: str) -> str:
    width, height, pad = 640, 220, 40
    points = [(r["t"], r.get(name, math.nan)) for r in rows for name, _ in series]
    xs = [t for t, _ in points] or [0.0]
    ys = [v for _, v in points if not math.isnan(v)] or [0.0]
    x_max = max(xs) or 1.0
    y_max = max(ys) * 1.1 or 1.0

    def sx(t: float) -> float:
        return pad + (width - 2 * pad) * t / x_max

    def sy(v: float) -> float:
        return height - pad - (height - 2 * pad) * v / y_max

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{html.escape(title)}">',
        f'<text x="{pad}" y="20" font-size="14">{html.escape(title)}</text>',
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#888"/>',
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#888"/>',
        f'<text x="{width - pad}" y="{height - 10}" font-size="11" text-anchor="end">{x_max:.0f} s</text>',
        f'<text x="4" y="{pad}" font-size="11">{y_max:.3g} {html.escape(unit)}</text>',
    ]
    for index, (name, colour) in enumerate(series):
        coords = [f"{sx(r['t']):.1f},{sy(r[name]):.1f}" for r in rows if not math.isnan(r.get(name, math.nan))]
        if coords:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(coords)}"/>')
        parts.append(
            f'<text x="{width - pad - 120}" y="{20 + 14 * index}" font-size="11" fill="{colour}">'
            f"{html.escape(name)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def html_report(result: RunResult, title: str = "edgefleet bench") -> str:
    summary = summarise(result)
    rows = timeline(result.samples)
    charts = [
        _svg_chart("Latency over time", rows, [("p50_ms", "#1f77b4"), ("p95_ms", "#d62728")], "ms"),
        _svg_chart("Hit ratio over time", rows, [("hit_ratio", "#2ca02c")], ""),
        _svg_chart("Edges serving over time", rows, [("edges", "#9467bd")], "edges"),
        _svg_chart("Requests per second", rows, [("rps", "#ff7f0e")], "req/s"),
    ]
    table = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{v:.4g}</td></tr>"
        if isinstance(v, float)
        else f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>"
        for k, v in summary.as_dict().items()
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}th{text-align:left;padding-right:1em}"
        "svg{display:block;margin:1em 0;border:1px solid #eee}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><table>{table}</table>{''.join(charts)}</body></html>\n"
    )
