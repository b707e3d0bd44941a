"""``edgefleet status``: the state of a fleet started by ``edgefleet up``.

``runtime.json`` says what the runtime started; whether each edge can apply purges right now only the
edge knows, so its ``/readyz`` is asked live (with the reason when it is not ready), and the purge bus
is pinged.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .screen import render_status
from .state import DEFAULT_STATE_DIR, RuntimeState, StateError, load_or_create_tokens, read_runtime

PROBE_TIMEOUT = 2.0


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


async def _edge_readiness(session: aiohttp.ClientSession, admin_url: str) -> str | None:
    """None when ready, else why not."""
    try:
        async with session.get(f"{admin_url}/readyz") as response:
            if response.status < 300:
                return None
            try:
                document: dict[str, Any] = await response.json(content_type=None)
                return str(document.get("reason") or f"/readyz answered {response.status}")
            except ValueError:
                return f"/readyz answered {response.status}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        return f"admin port unreachable ({type(exc).__name__})"


async def _bus_problem(redis_url: str) -> str | None:
    client = aioredis.Redis.from_url(redis_url, socket_connect_timeout=PROBE_TIMEOUT, socket_timeout=PROBE_TIMEOUT)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        return " ".join(str(exc).split()) or type(exc).__name__
    finally:
        await client.aclose()
    return None


async def probe(state: RuntimeState) -> tuple[dict[str, str], str | None]:
    """Edge name -> why it is not ready (ready edges absent), and why the bus is unreachable (or None)."""
    timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        answers = await asyncio.gather(*(_edge_readiness(session, edge.admin_url) for edge in state.edges))
    bus = await _bus_problem(state.redis_url) if state.redis_url else None
    return {e.name: why for e, why in zip(state.edges, answers, strict=True) if why is not None}, bus


def with_live_readiness(state: RuntimeState, not_ready: dict[str, str]) -> RuntimeState:
    edges = [replace(e, state="not-ready") if e.name in not_ready and e.state == "ready" else e for e in state.edges]
    return replace(state, edges=edges)


def run(args: argparse.Namespace) -> int:
    try:
        state = read_runtime(args.state_dir)
    except StateError as exc:
        print(f"edgefleet status: {exc}", file=sys.stderr)
        return 1
    not_ready, bus_problem = asyncio.run(probe(state))
    state = with_live_readiness(state, not_ready)
    state = with_balancer_view(state, args.state_dir)
    if args.output == "json":
        document = json.loads(state.to_json())
        document["not_ready"] = not_ready
        document["purge_bus"] = {"reachable": bus_problem is None, "error": bus_problem}
        print(json.dumps(document, indent=2, sort_keys=True))
        return 0
    lines = [render_status(state)]
    if bus_problem is not None:
        lines.append(f"purge bus: UNREACHABLE ({bus_problem})")
    for name, why in not_ready.items():
        lines.append(f"{name}: not ready: {why}")
    print("\n".join(lines))
    return 0
