"""The fleet page's numbers: per-edge rates from two scrapes, fleet points, and scaling decisions on the charts."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from edgefleet.charts import render_svg
from edgefleet.console.fleet_view import LocalFleetView
from edgefleet.console.stats import fleet_charts, fleet_point, parse_snapshot, rates, scaling_markers
from edgefleet.runtime.state import EdgeState, RuntimeState, write_runtime


def exposition(hits: int, misses: int, origin: int, fast: int, slow: int, memory: int) -> str:
    return f"""# TYPE edgefleet_edge_requests_total counter
edgefleet_edge_requests_total{{cache_status="hit",code="200"}} {hits}
edgefleet_edge_requests_total{{cache_status="miss",code="200"}} {misses}
edgefleet_edge_requests_total{{cache_status="bypass",code="200"}} 0
# TYPE edgefleet_edge_request_duration_seconds histogram
edgefleet_edge_request_duration_seconds_bucket{{cache_status="hit",le="0.001"}} {fast}
edgefleet_edge_request_duration_seconds_bucket{{cache_status="hit",le="0.1"}} {fast + slow}
edgefleet_edge_request_duration_seconds_bucket{{cache_status="hit",le="+Inf"}} {fast + slow}
edgefleet_edge_request_duration_seconds_count{{cache_status="hit"}} {fast + slow}
edgefleet_edge_request_duration_seconds_sum{{cache_status="hit"}} 1.0
# TYPE edgefleet_edge_origin_requests_total counter
edgefleet_edge_origin_requests_total{{code="200"}} {origin}
# TYPE edgefleet_edge_cache_bytes gauge
edgefleet_edge_cache_bytes{{tier="memory"}} {memory}
edgefleet_edge_cache_bytes{{tier="disk"}} 2048
# TYPE edgefleet_edge_cache_capacity_bytes gauge
edgefleet_edge_cache_capacity_bytes{{tier="memory"}} 1048576
edgefleet_edge_cache_capacity_bytes{{tier="disk"}} 4194304
"""


def test_rates_between_two_scrapes_give_hit_ratio_p95_rps_and_offload() -> None:
    before = parse_snapshot(exposition(hits=10, misses=10, origin=10, fast=20, slow=0, memory=0), at=100.0)
    after = parse_snapshot(exposition(hits=100, misses=20, origin=20, fast=100, slow=20, memory=512), at=110.0)
    r = rates(before, after)
    assert (r.requests, r.hits, r.origin, r.seconds) == (100, 90, 10, 10.0)
    point = fleet_point(110.0, [r], edges=1)
    assert point.hit_ratio == pytest.approx(0.9)
    assert point.requests_per_second == pytest.approx(10.0)
    assert point.origin_offload == pytest.approx(0.9)
    assert point.p95_ms is not None and 1.0 < point.p95_ms <= 100.0, "p95 lies in the slow bucket"
    assert after.stored == {"memory": 512, "disk": 2048}
    assert after.capacity["disk"] == 4194304


def test_restarted_edge_counts_from_zero_instead_of_going_negative() -> None:
    before = parse_snapshot(exposition(hits=500, misses=0, origin=0, fast=500, slow=0, memory=0), at=0.0)
    after = parse_snapshot(exposition(hits=5, misses=0, origin=0, fast=5, slow=0, memory=0), at=5.0)
    assert rates(before, after).requests == 0


async def test_local_fleet_view_reads_ready_edges_and_the_last_scaling_decision(tmp_path: Path) -> None:
    decided = time.time() - 30
    write_runtime(tmp_path, RuntimeState(
        pid=os.getpid(), cluster="default.shop", redis_url="", balancer_url="", balancer_admin_url="", origin_url="",
        prometheus_url=None,
        edges=[EdgeState("shop-edge-0", "u0", "http://127.0.0.1:1", 1, "ready"),
               EdgeState("shop-edge-1", "u1", "http://127.0.0.1:2", 2, "starting")],
        last_decision={"at": decided, "from": 2, "to": 3, "reason": "p95 latency 80 ms above the 50 ms target"},
    ))  # fmt: skip
    view = LocalFleetView(tmp_path)
    assert [e.name for e in await view.edges()] == ["shop-edge-0"]
    event = await view.last_scaling()
    assert event is not None and (event.from_edges, event.to_edges) == (2, 3)
    charts = fleet_charts([], scaling_markers([event]))
    edges_chart = render_svg(charts[-1])
    assert "2→3 edges: p95 latency 80 ms above the 50 ms target" in edges_chart


async def test_local_fleet_view_of_a_stopped_fleet_is_empty(tmp_path: Path) -> None:
    view = LocalFleetView(tmp_path)
    assert await view.edges() == []
    assert await view.last_scaling() is None
