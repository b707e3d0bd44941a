"""A private Prometheus for the local fleet, when the ``prometheus`` binary is installed.

It scrapes every edge (through a file_sd target list the runtime rewrites as edges come and go), the
origin and the balancer, every second, with the fleet's admin token. The autoscaler then queries it with
the same PromQL it uses in Kubernetes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import yaml

from .processes import ManagedProcess, wait_http_ok

SCRAPE_INTERVAL = "1s"


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


def scrape_config(targets_file: Path, origin: str, balancer_admin: str, token_file: Path) -> dict[str, object]:
    auth = {"type": "Bearer", "credentials_file": str(token_file)}
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [
            {
                "job_name": "edgefleet-edge",
                "authorization": auth,
                "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "1s"}],
            },
            {"job_name": "edgefleet-origin", "static_configs": [{"targets": [origin]}]},
            {
                "job_name": "edgefleet-balancer",
                "authorization": auth,
                "static_configs": [{"targets": [balancer_admin]}],
            },
        ],
    }


class LocalPrometheus:
    def __init__(self, binary: str, state_dir: Path, port: int, admin_token: str) -> None:
        self.dir = state_dir / "prometheus"
        self.port = port
        self.targets_file = self.dir / "edges.json"
        self.token_file = self.dir / "token"
        self.binary = binary
        self.admin_token = admin_token
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_targets(self, edges: list[tuple[str, str]]) -> None:
        """``edges``: (name, admin host:port). Written atomically; Prometheus re-reads it every second."""
        groups = [{"targets": [address], "labels": {"edge": name}} for name, address in edges]
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".edges-")
        with os.fdopen(fd, "w") as handle:
            json.dump(groups, handle)
        os.replace(tmp, self.targets_file)

    async def start(self, origin: str, balancer_admin: str, edges: list[tuple[str, str]]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(self.admin_token)
        self.write_targets(edges)
        config = self.dir / "prometheus.yml"
        config.write_text(yaml.safe_dump(scrape_config(self.targets_file, origin, balancer_admin, self.token_file)))
        self.process = ManagedProcess(
            "prometheus",
            [
                self.binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                "--storage.tsdb.retention.time=1d",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            self.dir / "prometheus.log",
        )
        self.process.start()
        await wait_http_ok(self.process, f"{self.url}/-/ready", 60.0)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
