"""Line charts as inline SVG, shared by ``edgefleet bench --report`` (and ``make demo``) and the console.

Pure: data in, markup out, no scripts and no network, so a chart renders the same in a report file
opened from disk and in the console page. Every chart has a human title, an axis label with its unit,
readable ticks on both axes (1-2-5 steps; times as seconds, minutes or clock times), optional event
markers on the time axis (a flash sale starting, a purge, an edge added) and a sentence saying what it shows.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

PALETTE = ("#1f6fb4", "#c0392b", "#2e8b3a", "#8e44ad", "#d35400", "#16a085")
"""Colours with enough contrast on white for thin lines (WCAG non-text contrast)."""

TimeAxis = Literal["elapsed", "clock"]
"""``elapsed``: seconds since the start of a run (bench); ``clock``: unix times shown as HH:MM UTC (console)."""


@dataclass(frozen=True)
class Series:
    label: str
    """What the line is, for people: "95th percentile latency"."""
    points: Sequence[tuple[float, float]]
    """(time, value) pairs in time order; NaN values leave a gap."""
    colour: str = ""


@dataclass(frozen=True)
class Marker:
    at: float
    """Time of the event, on the chart's time axis."""
    label: str
    """Short: "flash sale starts", "purge", "edge added (3)"."""


@dataclass(frozen=True)
class Chart:
    title: str
    unit: str
    """Unit of the y axis: "ms", "req/s", "%", "edges"."""
    series: Sequence[Series]
    caption: str
    """One sentence under the chart saying what it shows and how to read it."""
    markers: Sequence[Marker] = ()
    time_axis: TimeAxis = "elapsed"
    y_min: float | None = 0.0
    y_max: float | None = None
    """Fixed top of the y axis (100 for percentages), else from the data."""
    chart_id: str = field(default="")
    whole_numbers: bool = False
    """The values are counts (edges): ticks at whole numbers only."""
    time_range: tuple[float, float] | None = None
    """The span the x axis covers (a run's whole duration, the last hour), else the data's."""


def nice_step(span: float, target_ticks: int = 5) -> float:
    """A step of 1, 2 or 5 times a power of ten that cuts ``span`` into about ``target_ticks`` parts."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / max(1, target_ticks)
    power = 10.0 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 2.5, 5, 10):
        if raw <= multiple * power * (1 + 1e-9):
            return multiple * power
    return 10.0 * power


def nice_ticks(low: float, high: float, target_ticks: int = 5, whole_numbers: bool = False) -> list[float]:
    """Tick values covering [low, high] at a 1-2-5 step; the first <= low, the last >= high."""
    if high < low:
        low, high = high, low
    if high == low:
        high = low + 1.0
    step = nice_step(high - low, target_ticks)
    if whole_numbers:
        step = max(1.0, round(step))
    start = math.floor(low / step + 1e-9) * step
    ticks = []
    value = start
    while value < high + step * 0.999:
        ticks.append(round(value, 10))
        value += step
        if len(ticks) > 50:  # unreachable with a finite step; bounds the loop anyway
            break
    return ticks


TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)


def time_ticks(start: float, end: float, target_ticks: int = 6) -> list[float]:
    """Ticks at round seconds, minutes or hours inside [start, end]."""
    span = max(end - start, 1.0)
    step = next((s for s in TIME_STEPS if span / s <= target_ticks), TIME_STEPS[-1])
    first = math.ceil(start / step) * step
    return [first + i * step for i in range(int((end - first) // step) + 1)]


def format_elapsed(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:.0f} min"
    if seconds >= 60:
        return f"{int(seconds // 60)} min {seconds % 60:.0f} s"
    return f"{seconds:.0f} s"


def format_clock(unix: float, with_seconds: bool = False) -> str:
    return time.strftime("%H:%M:%S" if with_seconds else "%H:%M", time.gmtime(unix))


def format_value(value: float, unit: str) -> str:
    """A tick or legend value with its unit, without exponents: 0.5 ms, 2.5 s, 97%, 1.2k req/s."""
    if unit == "ms" and abs(value) >= 1000:
        return format_value(value / 1000, "s")
    magnitude = abs(value)
    if magnitude >= 10_000:
        text = f"{value / 1000:.0f}k"
    elif magnitude >= 1000 and value % 1000:
        text = f"{value / 1000:.1f}k"
    elif magnitude >= 1000:
        text = f"{value / 1000:.0f}k"
    elif magnitude >= 10 or value == int(value):
        text = f"{value:.0f}"
    elif magnitude >= 1:
        text = f"{value:.1f}".rstrip("0").rstrip(".")
    else:
        text = f"{value:.2f}".rstrip("0").rstrip(".")
    if unit == "%":
        return f"{text}%"
    if unit == "edges" and value == 1:
        unit = "edge"
    return f"{text} {unit}".strip()


WIDTH, HEIGHT = 560, 250
LEFT, RIGHT, TOP, BOTTOM = 62, 14, 44, 44


def render_svg(chart: Chart) -> str:
    """The chart as an ``<svg>`` element that scales to its container (viewBox, width 100%)."""
    finite = [(t, v) for s in chart.series for t, v in s.points if math.isfinite(v)]
    times = [t for s in chart.series for t, _ in s.points] + [m.at for m in chart.markers]
    t0, t1 = (min(times), max(times)) if times else (0.0, 1.0)
    if chart.time_range is not None:
        t0, t1 = min(t0, chart.time_range[0]), max(t1, chart.time_range[1])
    if chart.time_axis == "elapsed":
        t0 = min(t0, 0.0)
    if t1 <= t0:
        t1 = t0 + 1.0
    values = [v for _, v in finite]
    low = chart.y_min if chart.y_min is not None else (min(values) if values else 0.0)
    high = chart.y_max if chart.y_max is not None else (max(values) if values else 1.0)
    y_ticks = nice_ticks(low, max(high, low + 1e-9) if values or chart.y_max is not None else low + 1.0,
                         whole_numbers=chart.whole_numbers)  # fmt: skip
    y0, y1 = y_ticks[0], y_ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(t: float) -> float:
        return LEFT + plot_w * (t - t0) / (t1 - t0)

    def sy(v: float) -> float:
        return TOP + plot_h - plot_h * (v - y0) / ((y1 - y0) or 1.0)

    label = f"{chart.title} ({chart.unit})" if chart.unit else chart.title
    idattr = f' id="{html.escape(chart.chart_id)}"' if chart.chart_id else ""
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg"{idattr} class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="100%" preserveAspectRatio="xMidYMid meet" role="img" aria-label="{html.escape(label)}" '
        f'data-points="{len(finite)}">',
        f"<title>{html.escape(label)}</title>",
        f'<text x="{LEFT}" y="18" font-size="16" font-weight="bold" fill="#222">{html.escape(chart.title)}</text>',
    ]
    for tick in y_ticks:
        y = sy(tick)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#e4e4e4"/>')
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="12" text-anchor="end" fill="#444">'
            f"{html.escape(format_value(tick, chart.unit))}</text>"
        )
    x_ticks = time_ticks(t0, t1)
    fmt: Callable[[float], str] = format_elapsed
    if chart.time_axis == "clock":
        seconds = len(x_ticks) > 1 and (x_ticks[1] - x_ticks[0]) < 60

        def fmt(t: float) -> str:
            return format_clock(t, seconds)

    for tick in x_ticks:
        x = sx(tick)
        parts.append(f'<line x1="{x:.1f}" y1="{TOP + plot_h}" x2="{x:.1f}" y2="{TOP + plot_h + 5}" stroke="#888"/>')
        parts.append(
            f'<text x="{x:.1f}" y="{TOP + plot_h + 18}" font-size="12" text-anchor="middle" fill="#444">'
            f"{html.escape(fmt(tick))}</text>"
        )
    axis_name = "time (UTC)" if chart.time_axis == "clock" else "time since the run started"
    parts.append(
        f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" font-size="11" text-anchor="middle" fill="#444">'
        f"{axis_name}</text>"
    )
    parts.append(
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" stroke="#888"/>'
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#888"/>'
    )
    for index, marker in enumerate(chart.markers):
        x = sx(marker.at)
        # Labels right of the line, or left of it in the right third, so they stay inside the chart.
        anchor, dx = ("end", -3) if x > LEFT + plot_w * 0.66 else ("start", 3)
        parts.append(
            f'<g class="marker"><line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + plot_h}" stroke="#555" '
            f'stroke-dasharray="4 3"/><text x="{x + dx:.1f}" y="{TOP + 12 + 13 * (index % 3)}" font-size="12" '
            f'text-anchor="{anchor}" fill="#333" stroke="#fff" stroke-width="3" paint-order="stroke">'
            f"{html.escape(marker.label)}</text></g>"
        )
    legend_x = WIDTH - RIGHT
    for index, series in enumerate(chart.series):
        colour = series.colour or PALETTE[index % len(PALETTE)]
        runs: list[list[str]] = [[]]
        for t, v in series.points:
            if math.isfinite(v):
                runs[-1].append(f"{sx(t):.1f},{sy(v):.1f}")
            elif runs[-1]:
                runs.append([])
        for run in runs:
            if len(run) == 1:
                cx, cy = run[0].split(",")
                parts.append(f'<circle class="point" cx="{cx}" cy="{cy}" r="2.5" fill="{colour}"/>')
            elif run:
                parts.append(
                    f'<polyline class="line" fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(run)}"/>'
                )
        parts.append(
            f'<text x="{legend_x}" y="{18 + 15 * index}" font-size="13" text-anchor="end" fill="{colour}">'
            f"{html.escape(series.label)}</text>"
        )
    if not finite:
        parts.append(
            f'<text x="{LEFT + plot_w / 2:.1f}" y="{TOP + plot_h / 2:.1f}" font-size="13" text-anchor="middle" '
            f'fill="#666">no data yet</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def render_figure(chart: Chart) -> str:
    """The chart with its sentence underneath, as a ``<figure>``."""
    caption = html.escape(chart.caption)
    return f'<figure class="chart-figure">{render_svg(chart)}<figcaption>{caption}</figcaption></figure>'
