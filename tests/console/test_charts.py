"""The shared charts (``edgefleet.charts``): readable ticks and values, markers, and honest gaps."""

from __future__ import annotations

import math
import re

import pytest

from edgefleet.charts import Chart, Marker, Series, format_value, nice_ticks, render_figure, render_svg, time_ticks


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [(0, 2013, [0, 500, 1000, 1500, 2000, 2500]), (0, 1, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
     (0, 100, [0, 20, 40, 60, 80, 100]), (3, 3, [3, 3.2, 3.4, 3.6, 3.8, 4.0])],
    ids=["latency-ms", "ratio", "percent", "flat"],
)  # fmt: skip
def test_ticks_step_by_one_two_or_five_and_cover_the_data(low: float, high: float, expected: list[float]) -> None:
    assert nice_ticks(low, high) == pytest.approx(expected)


def test_counts_get_whole_number_ticks() -> None:
    ticks = nice_ticks(0, 2, whole_numbers=True)
    assert ticks == [0, 1, 2]


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [(2010.0, "ms", "2 s"), (2500.0, "ms", "2.5 s"), (0.5, "ms", "0.5 ms"), (97.0, "%", "97%"),
     (1200.0, "req/s", "1.2k req/s"), (40.0, "ms", "40 ms"), (3.0, "edges", "3 edges"), (1.0, "edges", "1 edge")],
    ids=["seconds", "seconds-half", "sub-ms", "percent", "thousands", "ms", "count", "one"],
)  # fmt: skip
def test_values_read_like_people_write_them(value: float, unit: str, text: str) -> None:
    assert format_value(value, unit) == text
    assert "e+" not in format_value(value, unit)


def test_time_ticks_fall_on_round_seconds_and_minutes() -> None:
    assert time_ticks(0, 60) == [0, 10, 20, 30, 40, 50, 60]
    assert time_ticks(1000, 4600)[:2] == [1200, 1800]


def chart(**overrides: object) -> Chart:
    base: dict[str, object] = {
        "title": "Latency",
        "unit": "ms",
        "series": [Series("95th percentile", [(0, 5.0), (10, math.nan), (20, 2013.0), (30, 40.0)])],
        "caption": "How long shoppers waited.",
        "markers": [Marker(15, "flash sale starts")],
    }
    base.update(overrides)
    return Chart(**base)  # type: ignore[arg-type]


def test_svg_has_labelled_axes_ticks_markers_and_a_gap_where_data_is_missing() -> None:
    svg = render_svg(chart())
    assert 'aria-label="Latency (ms)"' in svg
    texts = re.findall(r">([^<>]+)</text>", svg)
    assert {"0 ms", "1 s", "2 s"} <= set(texts), texts
    assert {"0 s", "10 s", "20 s", "30 s"} <= set(texts)
    assert "flash sale starts" in texts and "95th percentile" in texts
    assert svg.count("<polyline") == 1 and svg.count("<circle") == 1, "NaN splits the line; a lone point is a dot"
    assert 'data-points="3"' in svg


def test_figure_puts_the_sentence_under_the_chart() -> None:
    figure = render_figure(chart())
    assert figure.index("</svg>") < figure.index("<figcaption>How long shoppers waited.</figcaption>")


def test_empty_chart_says_so() -> None:
    assert "no data yet" in render_svg(chart(series=[Series("95th percentile", [])], markers=[]))


def test_clock_axis_shows_seconds_only_for_short_spans() -> None:
    short = re.findall(
        r">([0-9:]+)</text>",
        render_svg(chart(time_axis="clock", series=[Series("p95", [(3600, 1.0), (3630, 2.0)])], markers=[])),
    )
    long = re.findall(
        r">([0-9:]+)</text>",
        render_svg(chart(time_axis="clock", series=[Series("p95", [(0, 1.0), (3600, 2.0)])], markers=[])),
    )
    assert "01:00:00" in short and "01:00:10" in short
    assert "00:00" in long and "01:00" in long
