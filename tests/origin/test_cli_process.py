"""``edgefleet origin`` as a real process: configured by flags and environment, serving, stopping cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from origin_testkit import TOKEN

from edgefleet.embedded_redis import free_port


def wait_until_healthy(url: str, process: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        assert process.poll() is None, "the origin exited during start-up"
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)  # polling interval of a readiness wait with a deadline, not a readiness guess
    raise AssertionError("the origin did not become healthy in time")


def test_origin_command_serves_uploads_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = os.environ | {"EDGEFLEET_UPLOAD_TOKEN": TOKEN, "EDGEFLEET_MAX_UPLOAD_SIZE": "1Ki"}
    argv = [
        sys.executable, "-m", "edgefleet.cli", "origin", "--listen", f"127.0.0.1:{port}",
        "--storage", f"file://{tmp_path / 'objects'}", "--variant-cache-dir", str(tmp_path / "variants"),
        "--log-format", "json", "--image-workers", "1",
    ]  # fmt: skip
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, time.monotonic() + 60)
        put = urllib.request.Request(
            f"{url}/api/files/hello.txt", data=b"hi", method="PUT", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with urllib.request.urlopen(put, timeout=10) as response:
            assert response.status == 201
        too_big = urllib.request.Request(
            f"{url}/api/files/big.txt", data=b"x" * 2048, method="PUT", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        try:
            urllib.request.urlopen(too_big, timeout=10)
            raise AssertionError("a body over --max-upload-size from the environment was accepted")
        except urllib.error.HTTPError as exc:
            assert exc.code == 413
        assert (tmp_path / "objects" / "hello.txt").read_bytes() == b"hi"
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr.decode()
    assert b'"message": "Stopped origin"' in stderr
    assert TOKEN.encode() not in stderr


def test_origin_command_reports_bad_storage_configuration(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "edgefleet.cli", "origin", "--storage", "s3://shop?endpoint=127.0.0.1:1"]
    env = {k: v for k, v in os.environ.items() if "S3" not in k and not k.startswith("AWS_")}
    result = subprocess.run(argv, env=env, capture_output=True, timeout=60, check=False)
    assert result.returncode == 2
    assert b"needs credentials" in result.stderr
