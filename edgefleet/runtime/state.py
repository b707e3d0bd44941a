"""The runtime's state directory: tokens (kept across runs) and ``runtime.json`` (what is running now).

``edgefleet status``, ``purge`` and ``upload`` find a running fleet through ``runtime.json``; the
tokens file is created once with mode 0600 and reused, so URLs and tokens survive restarts.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_STATE_DIR = Path(".edgefleet")
RUNTIME_FILE = "runtime.json"
TOKENS_FILE = "tokens.json"


class StateError(RuntimeError):
    """No running fleet, or its state files are unreadable."""


@dataclass(frozen=True)
class Tokens:
    admin: str
    upload: str
    console: str = ""
    """What people sign in to the console with."""


def load_or_create_tokens(state_dir: Path) -> Tokens:
    path = state_dir / TOKENS_FILE
    if path.exists():
        data = json.loads(path.read_text())
        tokens = Tokens(admin=data["admin"], upload=data["upload"], console=data.get("console", ""))
        if tokens.console:
            return tokens
        # A state dir from before the console: add its token, keep the others.
        tokens = Tokens(admin=tokens.admin, upload=tokens.upload, console=secrets.token_urlsafe(24))
        fd, tmp = tempfile.mkstemp(dir=state_dir, prefix=".tokens-")
        with os.fdopen(fd, "w") as handle:
            json.dump(asdict(tokens), handle)
        os.replace(tmp, path)
        return tokens
    state_dir.mkdir(parents=True, exist_ok=True)
    tokens = Tokens(admin=secrets.token_urlsafe(24), upload=secrets.token_urlsafe(24),
                    console=secrets.token_urlsafe(24))  # fmt: skip
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(asdict(tokens), handle)
    return tokens


@dataclass
class EdgeState:
    name: str
    url: str
    admin_url: str
    pid: int | None
    state: str
    """starting, ready, restarting or stopped."""
    restarts: int = 0
    balancer: str = ""
    """How the balancer (HAProxy) sees it: UP, DOWN, MAINT, ... and its last health check; filled in live
    by ``edgefleet status``."""


@dataclass
class RuntimeState:
    pid: int
    cluster: str
    redis_url: str
    balancer_url: str
    balancer_admin_url: str
    origin_url: str
    prometheus_url: str | None
    edges: list[EdgeState] = field(default_factory=list)
    metrics: dict[str, float | None] = field(default_factory=dict)
    last_decision: dict[str, Any] | None = None
    deviations: list[str] = field(default_factory=list)
    console_url: str | None = None
    """The web console, when spec.console.enabled."""
    processes: dict[str, int] = field(default_factory=dict)
    """Name -> pid of every child process (origin, balancer, edges, redis, prometheus)."""
    updated_at: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RuntimeState:
        data = json.loads(text)
        data["edges"] = [EdgeState(**edge) for edge in data.get("edges", [])]
        return cls(**data)


def write_runtime(state_dir: Path, state: RuntimeState) -> None:
    fd, tmp = tempfile.mkstemp(dir=state_dir, prefix=".runtime-")
    with os.fdopen(fd, "w") as handle:
        handle.write(state.to_json())
    os.replace(tmp, state_dir / RUNTIME_FILE)


def clear_runtime(state_dir: Path) -> None:
    (state_dir / RUNTIME_FILE).unlink(missing_ok=True)


def read_runtime(state_dir: Path) -> RuntimeState:
    path = state_dir / RUNTIME_FILE
    try:
        state = RuntimeState.from_json(path.read_text())
    except FileNotFoundError as exc:
        raise StateError(f"no running fleet in {state_dir} (start one with 'edgefleet up')") from exc
    except (json.JSONDecodeError, TypeError, KeyError) as exc:
        raise StateError(f"{path} is unreadable: {exc}") from exc
    try:
        os.kill(state.pid, 0)
    except ProcessLookupError as exc:
        raise StateError(f"the fleet in {state_dir} is not running (its runtime, pid {state.pid}, is gone)") from exc
    return state
