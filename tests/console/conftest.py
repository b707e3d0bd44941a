"""A real fleet with its console, started by ``edgefleet up`` once for the console tests, and a signed-in client."""

from __future__ import annotations

import contextlib
import os
import re
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

from edgefleet.embedded_redis import free_port
from edgefleet.runtime.state import RuntimeState, StateError, Tokens, load_or_create_tokens, read_runtime

T = TypeVar("T")
DEADLINE = 120.0

MANIFEST = {
    "apiVersion": "cdn.edgefleet.io/v1alpha1",
    "kind": "CdnCluster",
    "metadata": {"name": "console-shop"},
    "spec": {
        "origin": {
            "storage": {"filesystem": {"hostPath": "/unused-locally"}},
            "defaultTtl": "10m",
            "images": {"widths": [160, 320, 640], "formats": ["webp", "jpeg"]},
        },
        "edge": {"replicas": {"min": 2, "max": 2}, "cache": {"memory": "32Mi", "disk": "64Mi"}},
        "console": {"enabled": True},
    },
}


def eventually(probe: Callable[[], T | None], what: str, timeout: float = DEADLINE) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


@dataclass
class ConsoleFleet:
    process: subprocess.Popen[bytes]
    state_dir: Path
    tokens: Tokens

    @property
    def state(self) -> RuntimeState:
        return read_runtime(self.state_dir)

    @property
    def url(self) -> str:
        console = self.state.console_url
        assert console, "edgefleet up did not start the console"
        return console

    def console_log(self) -> str:
        return (self.state_dir / "logs" / "console.log").read_text(errors="replace")

    def up_log(self) -> str:
        return (self.state_dir / "up.log").read_text(errors="replace")


@contextlib.contextmanager
def running_fleet(
    tmp_path_factory: pytest.TempPathFactory, *, prometheus: bool, env: dict[str, str]
) -> Iterator[ConsoleFleet]:
    state_dir = tmp_path_factory.mktemp("console-fleet") / "state"
    state_dir.mkdir()
    manifest = state_dir.parent / "cdncluster.yaml"
    manifest.write_text(yaml.safe_dump(MANIFEST))
    base = free_port()
    while base > 60000:
        base = free_port()
    log = (state_dir / "up.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "edgefleet.cli", "up", "-f", str(manifest), "--state-dir", str(state_dir),
         "--port", str(base), "--no-screen", *(() if prometheus else ("--no-prometheus",))],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env={**os.environ, **env},
    )  # fmt: skip

    def running() -> RuntimeState | None:
        assert process.poll() is None, f"edgefleet up exited early:\n{(state_dir / 'up.log').read_text()[-4000:]}"
        try:
            return read_runtime(state_dir)
        except StateError:
            return None

    try:
        eventually(running, "edgefleet up to start")
        yield ConsoleFleet(process, state_dir, load_or_create_tokens(state_dir))
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


@pytest.fixture(scope="session")
def console_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleFleet]:
    """Charts from the edges' metrics, sampled every second so they have points within the tests' patience."""
    with running_fleet(tmp_path_factory, prometheus=False, env={"EDGEFLEET_SAMPLE_INTERVAL": "1s"}) as fleet:
        yield fleet


def sign_in(console_url: str, token: str) -> tuple[requests.Session, str]:
    """A requests session signed in through the form, and the page's CSRF token."""
    http = requests.Session()
    form = http.get(f"{console_url}/login", timeout=10)
    nonce = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert nonce, form.text
    answer = http.post(f"{console_url}/login", data={"csrf": nonce.group(1), "token": token}, timeout=10)
    assert answer.status_code == 200 and answer.url.endswith("/assets"), (answer.status_code, answer.text[:300])
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', answer.text)
    assert csrf, answer.text[:300]
    return http, csrf.group(1)


@pytest.fixture
def signed_in(console_fleet: ConsoleFleet) -> tuple[requests.Session, str]:
    return sign_in(console_fleet.url, console_fleet.tokens.console)
