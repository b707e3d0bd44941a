"""``edgefleet status``: the state of a fleet started by ``edgefleet up``."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

from .screen import render_status
from .state import DEFAULT_STATE_DIR, RuntimeState, StateError, load_or_create_tokens, read_runtime


def balancer_view(admin_url: str, token: str, timeout: float = 3.0) -> dict[str, str]:
    """Edge name -> how the balancer sees it right now ("UP L7OK", "DOWN L4CON", ...), from GET /members."""
    request = urllib.request.Request(f"{admin_url}/members", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        members = json.loads(response.read())
    return {str(m["name"]): f"{m.get('status', '?')} {m.get('check', '')}".strip() for m in members}


def with_balancer_view(state: RuntimeState, state_dir: Path) -> RuntimeState:
    try:
        view = balancer_view(state.balancer_admin_url, load_or_create_tokens(state_dir).admin)
    except (OSError, urllib.error.URLError, ValueError, KeyError, TypeError) as exc:
        view = {}
        print(f"edgefleet status: the balancer did not say how it sees the edges: {exc}", file=sys.stderr)
    for edge in state.edges:
        edge.balancer = view.get(edge.name, "not a member" if view else "?")
    return state


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="the fleet's state directory")
    parser.add_argument("--output", choices=["text", "json"], default="text", help="output format")


def run(args: argparse.Namespace) -> int:
    try:
        state = read_runtime(args.state_dir)
    except StateError as exc:
        print(f"edgefleet status: {exc}", file=sys.stderr)
        return 1
    state = with_balancer_view(state, args.state_dir)
    if args.output == "json":
        print(state.to_json())
    else:
        print(render_status(state))
    return 0
