"""Command-line flags with ``EDGEFLEET_*`` environment equivalents.

``--admin-token`` falls back to ``EDGEFLEET_ADMIN_TOKEN``; the flag wins when both are given. The
environment is read when the parser is built (at start-up), never at import time.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from edgefleet.api.units import UnitError, parse_bytes, parse_seconds


def env_name(flag: str) -> str:
    """``--admin-listen`` -> ``EDGEFLEET_ADMIN_LISTEN``."""
    return "EDGEFLEET_" + flag.lstrip("-").upper().replace("-", "_")


def add_flag(
    parser: argparse.ArgumentParser | Any,
    flag: str,
    *,
    help: str,
    default: Any = None,
    type: Callable[[str], Any] = str,
    secret: bool = False,
    **kwargs: Any,
) -> None:
    """Add ``flag`` whose default comes from its environment variable, else ``default``.

    ``secret`` flags are documented as better passed by environment, because flags show up in ``ps``.
    """
    variable = env_name(flag)
    raw = os.environ.get(variable)
    value = default
    if raw is not None:
        try:
            value = type(raw)
        except (ValueError, argparse.ArgumentTypeError) as exc:
            parser.error(f"{variable}={raw!r}: {exc}")
    hint = f" (env {variable}" + ("; prefer the environment for secrets" if secret else "") + ")"
    parser.add_argument(flag, default=value, type=type, help=help + hint, **kwargs)


def host_port(text: str) -> tuple[str, int]:
    """``127.0.0.1:8080`` or ``:8080`` -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return (host.strip("[]") or "0.0.0.0", int(port))


def size(text: str) -> int:
    """A byte size such as ``512Mi``."""
    try:
        return parse_bytes(text)
    except UnitError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def duration(text: str) -> float:
    """A duration such as ``15s``, in seconds."""
    try:
        return parse_seconds(text)
    except UnitError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
