"""``edgefleet status``: the state of a fleet started by ``edgefleet up``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .screen import render_status
from .state import DEFAULT_STATE_DIR, StateError, read_runtime


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="the fleet's state directory")
    parser.add_argument("--output", choices=["text", "json"], default="text", help="output format")


def run(args: argparse.Namespace) -> int:
    try:
        state = read_runtime(args.state_dir)
    except StateError as exc:
        print(f"edgefleet status: {exc}", file=sys.stderr)
        return 1
    if args.output == "json":
        print(state.to_json())
    else:
        print(render_status(state))
    return 0
