"""With Prometheus (Debian's package, started by ``edgefleet up``), the console's charts come from it."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator

import pytest
import requests

from tests.conftest import require
from tests.console.conftest import ConsoleFleet, eventually, running_fleet, sign_in


@pytest.fixture(scope="module")
def prometheus_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleFleet]:
    require(shutil.which("prometheus") is not None, "Prometheus (Debian package 'prometheus')")
    # One point per second from Prometheus, so a young fleet already has a line.
    with running_fleet(tmp_path_factory, prometheus=True, env={"EDGEFLEET_PROMETHEUS_STEP": "1s"}) as fleet:
        yield fleet


def test_charts_come_from_prometheus_when_it_runs(prometheus_fleet: ConsoleFleet) -> None:
    state = prometheus_fleet.state
    assert state.prometheus_url, "edgefleet up started Prometheus"
    http, csrf = sign_in(prometheus_fleet.url, prometheus_fleet.tokens.console)
    source = re.compile(r"From Prometheus \(" + re.escape(state.prometheus_url))

    def panel_from_prometheus_with_data() -> bool:
        for i in range(20):
            requests.get(f"{state.balancer_url}/assets/missing-{i % 4}.jpg", timeout=30)
        panel = http.get(f"{prometheus_fleet.url}/fleet/panel", timeout=30).text
        points = dict(re.findall(r'id="(chart-[a-z0-9-]+)"[^>]*data-points="(\d+)"', panel))
        return (
            bool(source.search(panel))
            and int(points.get("chart-requests", 0)) >= 3
            and (int(points.get("chart-edges", 0)) >= 3)
        )

    eventually(panel_from_prometheus_with_data, "request and edge charts drawn from Prometheus", 90)
    assert csrf
