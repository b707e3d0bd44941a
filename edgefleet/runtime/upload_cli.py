"""``edgefleet upload``: put a file into a local fleet's origin (which then purges and warms the edges).

The origin stores the object first and then publishes its purge; when the purge bus is down the purge
waits in the origin's outbox. That is not success for a shop (edges keep serving the old bytes), so the
command fails with a clear line then, or with ``--wait`` waits until the outbox published it.
"""

from __future__ import annotations

import argparse
import asyncio
import mimetypes
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from edgefleet.flags import duration

from .state import DEFAULT_STATE_DIR, StateError, load_or_create_tokens, read_runtime

TAGS_HEADER = "X-Surrogate-Key"
TTL_HEADER = "X-Cache-Max-Age"


class UploadError(RuntimeError):
    """The origin refused the upload, or could not be reached."""


class PurgePending(UploadError):
    """The object is stored, but its purge is not yet published (it waits in the origin's outbox)."""


@dataclass(frozen=True)
class Uploaded:
    status: int
    """201 created, 200 replaced."""
    outbox_entry: str | None
    """Set when the change's purge/warm events are not yet published."""


def one_line(text: str, limit: int = 200) -> str:
    return " ".join(text.split())[:limit]


async def upload_object(
    session: aiohttp.ClientSession,
    origin_url: str,
    token: str,
    key: str,
    body: bytes,
    tags: Sequence[str] = (),
    ttl: str | None = None,
) -> int:
    """PUT ``body`` as ``key``; the HTTP status (201 created, 200/204 replaced)."""
    return (await put_object(session, origin_url, token, key, body, tags, ttl)).status


async def put_object(
    session: aiohttp.ClientSession,
    origin_url: str,
    token: str,
    key: str,
    body: bytes,
    tags: Sequence[str] = (),
    ttl: str | None = None,
) -> Uploaded:
    """PUT ``body`` as ``key``: its status, and the outbox entry when its purge is still pending."""
    content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
    if tags:
        headers[TAGS_HEADER] = " ".join(tags)
    if ttl:
        headers[TTL_HEADER] = ttl
    async with session.put(f"{origin_url}/api/files/{quote(key)}", data=body, headers=headers) as response:
        if response.status >= 300:
            raise UploadError(f"upload of {key} failed: {response.status} {one_line(await response.text())}")
        document: dict[str, Any] = await response.json(content_type=None)
    entry = None if document.get("event_published", True) else str(document.get("outbox_entry", "") or "?")
    return Uploaded(response.status, entry)


async def outbox(session: aiohttp.ClientSession, origin_url: str, token: str) -> tuple[list[str], str | None]:
    """The origin's unpublished changes and the last reason the bus gave."""
    async with session.get(f"{origin_url}/api/outbox", headers={"Authorization": f"Bearer {token}"}) as response:
        if response.status >= 300:
            raise UploadError(f"origin outbox query failed: {response.status} {one_line(await response.text())}")
        document: dict[str, Any] = await response.json(content_type=None)
    return [str(name) for name in document.get("pending", [])], document.get("last_error")


async def wait_published(
    session: aiohttp.ClientSession, origin_url: str, token: str, entry: str, timeout: float
) -> None:
    """Return once ``entry`` left the origin's outbox (published); PurgePending after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        pending, reason = await outbox(session, origin_url, token)
        if entry not in pending:
            return
        if time.monotonic() > deadline:
            why = f" ({one_line(reason)})" if reason else ""
            raise PurgePending(f"the purge bus did not take the change within {timeout:.0f}s{why}")
        await asyncio.sleep(0.2)  # polling the outbox under a deadline


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="the file to upload")
    parser.add_argument("--key", required=True, help="object key, e.g. products/sku-1.jpg")
    parser.add_argument("--tags", nargs="*", default=[], help="surrogate keys for purging, e.g. sku-1 cat-shoes")
    parser.add_argument("--ttl", help="cache lifetime for this object, e.g. 10m")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="the fleet's state directory")
    parser.add_argument("--wait", action="store_true", help="if the purge bus is down, wait until it takes the change")
    parser.add_argument("--timeout", type=duration, default=60.0, help="how long --wait waits (default 60s)")


async def _upload(args: argparse.Namespace) -> int:
    state = read_runtime(args.state_dir)
    token = load_or_create_tokens(args.state_dir).upload
    body = args.file.read_bytes()
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        try:
            done = await put_object(session, state.origin_url, token, args.key, body, args.tags, args.ttl)
            if done.outbox_entry is not None:
                if not args.wait:
                    _, reason = await outbox(session, state.origin_url, token)
                    why = f" ({one_line(reason)})" if reason else ""
                    raise PurgePending(
                        f"stored {args.key}, but its purge is still pending: the purge bus is unreachable{why}; "
                        "edges may serve the old version until the origin publishes it (use --wait to wait)"
                    )
                print(f"stored {args.key}; waiting for the purge bus to take its purge", file=sys.stderr)
                await wait_published(session, state.origin_url, token, done.outbox_entry, args.timeout)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UploadError(
                f"cannot reach the origin at {state.origin_url}: {one_line(str(exc)) or 'timed out'}"
            ) from exc
    print(
        f"uploaded {args.file} as {args.key} ({done.status}); shoppers get it at {state.balancer_url}/assets/{args.key}"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        print(f"edgefleet upload: {args.file} is not a file", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_upload(args))
    except PurgePending as exc:
        print(f"edgefleet upload: {exc}", file=sys.stderr)
        return 3
    except (StateError, UploadError) as exc:
        print(f"edgefleet upload: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"edgefleet upload: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 1
