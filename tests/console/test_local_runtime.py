"""``edgefleet up`` and the console: its token, its plan, and a command line without secrets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from edgefleet.api import CdnCluster
from edgefleet.runtime.plan import console_command, make_plan
from edgefleet.runtime.screen import render_status
from edgefleet.runtime.state import RuntimeState, load_or_create_tokens

ROOT = Path(__file__).resolve().parents[2]


def test_state_dir_from_before_the_console_gets_a_console_token_and_keeps_the_others(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"admin": "old-admin", "upload": "old-upload"}, handle)
    tokens = load_or_create_tokens(tmp_path)
    assert (tokens.admin, tokens.upload) == ("old-admin", "old-upload")
    assert len(tokens.console) >= 24
    assert load_or_create_tokens(tmp_path) == tokens, "the console token is kept across runs"
    assert path.stat().st_mode & 0o077 == 0, "the tokens file stays private"


def test_new_state_dir_has_three_distinct_tokens(tmp_path: Path) -> None:
    tokens = load_or_create_tokens(tmp_path)
    assert len({tokens.admin, tokens.upload, tokens.console}) == 3


def test_local_example_runs_the_console_without_secrets_on_its_command_line(tmp_path: Path) -> None:
    cluster = CdnCluster.model_validate(yaml.safe_load((ROOT / "examples" / "cdncluster-local.yaml").read_text()))
    plan = make_plan(cluster, tmp_path, 18080)
    assert plan.console_enabled
    tokens = load_or_create_tokens(tmp_path)
    command = console_command(plan, "redis://127.0.0.1:1/0", "http://127.0.0.1:18080", "http://127.0.0.1:2", None)
    assert command[command.index("console") + 1 :][:2] == ["--listen", f"127.0.0.1:{plan.ports.console}"]
    assert "--state-dir" in command
    assert not {tokens.admin, tokens.upload, tokens.console} & set(" ".join(command).split())


def test_status_screen_shows_where_the_console_is() -> None:
    state = RuntimeState(pid=1, cluster="default.shop", redis_url="", balancer_url="http://127.0.0.1:8080",
                         balancer_admin_url="", origin_url="", prometheus_url=None,
                         console_url="http://127.0.0.1:8082")  # fmt: skip
    assert "console: http://127.0.0.1:8082" in render_status(state, now=0.0)
