"""``edgefleet purge``: purge a local fleet through its bus and report each edge's acknowledgement."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from edgefleet.bus import BusError, PurgeBus, PurgeMessage
from edgefleet.flags import duration

from .state import DEFAULT_STATE_DIR, StateError, read_runtime


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--path", action="append", default=[], help="exact path (all its variants); repeatable")
    parser.add_argument("--prefix", action="append", default=[], help="path prefix; repeatable")
    parser.add_argument("--tag", action="append", default=[], help="surrogate key; repeatable")
    parser.add_argument("--all", action="store_true", help="purge everything")
    parser.add_argument("--soft", action="store_true", help="mark stale instead of evicting")
    parser.add_argument("--wait", action="store_true", help="wait until every edge acknowledged")
    parser.add_argument("--timeout", type=duration, default=30.0, help="how long --wait waits (default 30s)")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="the fleet's state directory")


async def _purge(args: argparse.Namespace) -> int:
    state = read_runtime(args.state_dir)
    members = [edge.name for edge in state.edges if edge.state == "ready"]
    client = aioredis.Redis.from_url(state.redis_url, socket_connect_timeout=5, socket_timeout=10)
    try:
        bus = PurgeBus(client, state.cluster)
        message = PurgeMessage(
            purge_id=str(uuid.uuid4()),
            paths=tuple(args.path),
            prefixes=tuple(args.prefix),
            tags=tuple(args.tag),
            all=args.all,
            soft=args.soft,
            issuer="cli",
        )
        issued = time.time()
        entry_id = await bus.publish_purge(message)
        print(f"published purge {entry_id} to {len(members)} edges")
        if not args.wait:
            return 0
        deadline = time.monotonic() + args.timeout
        while True:
            acks = await bus.acknowledgements(entry_id)
            pending = [m for m in members if m not in acks]
            if not pending or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)  # polling acknowledgements under a deadline
        for member in members:
            if member in acks:
                print(f"  {member:<24} acknowledged after {(acks[member] - issued) * 1000:.1f} ms")
            else:
                print(f"  {member:<24} NOT acknowledged")
        if pending:
            print(f"purge incomplete after {args.timeout:.0f}s: {', '.join(pending)} did not confirm", file=sys.stderr)
            return 1
        slowest = max((acks[m] for m in members), default=issued)
        print(f"purge complete on every edge in {(slowest - issued) * 1000:.1f} ms")
        return 0
    finally:
        await client.aclose()


def run(args: argparse.Namespace) -> int:
    if not (args.path or args.prefix or args.tag or args.all):
        print("edgefleet purge: name something to purge: --path, --prefix, --tag or --all", file=sys.stderr)
        return 2
    try:
        PurgeMessage(purge_id="check", paths=tuple(args.path), prefixes=tuple(args.prefix), tags=tuple(args.tag))
    except ValueError as exc:
        print(f"edgefleet purge: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_purge(args))
    except StateError as exc:
        print(f"edgefleet purge: {exc}", file=sys.stderr)
        return 1
    except (BusError, RedisError, OSError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        print(f"edgefleet purge: purge bus at {_where(args)} unreachable: {reason}", file=sys.stderr)
        return 1


def _where(args: argparse.Namespace) -> str:
    """The bus address without credentials, for error lines."""
    try:
        url = read_runtime(args.state_dir).redis_url
    except StateError:
        return "(unknown)"
    return url.rpartition("@")[2]
