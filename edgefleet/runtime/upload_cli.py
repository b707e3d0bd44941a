"""``edgefleet upload``: put a file into a local fleet's origin (which then purges and warms the edges)."""

from __future__ import annotations

import argparse
import asyncio
import mimetypes
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import aiohttp

from .state import DEFAULT_STATE_DIR, StateError, load_or_create_tokens, read_runtime

TAGS_HEADER = "X-Surrogate-Key"
TTL_HEADER = "X-Cache-Max-Age"


class UploadError(RuntimeError):
    """The origin refused the upload."""


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
    content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
    if tags:
        headers[TAGS_HEADER] = " ".join(tags)
    if ttl:
        headers[TTL_HEADER] = ttl
    async with session.put(f"{origin_url}/api/files/{quote(key)}", data=body, headers=headers) as response:
        if response.status >= 300:
            raise UploadError(f"upload of {key} failed: {response.status} {(await response.text())[:200]}")
        return response.status


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="the file to upload")
    parser.add_argument("--key", required=True, help="object key, e.g. products/sku-1.jpg")
    parser.add_argument("--tags", nargs="*", default=[], help="surrogate keys for purging, e.g. sku-1 cat-shoes")
    parser.add_argument("--ttl", help="cache lifetime for this object, e.g. 10m")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="the fleet's state directory")


async def _upload(args: argparse.Namespace) -> int:
    state = read_runtime(args.state_dir)
    token = load_or_create_tokens(args.state_dir).upload
    async with aiohttp.ClientSession() as session:
        status = await upload_object(
            session, state.origin_url, token, args.key, args.file.read_bytes(), args.tags, args.ttl
        )
    print(f"uploaded {args.file} as {args.key} ({status}); shoppers get it at {state.balancer_url}/assets/{args.key}")
    return 0


def run(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        print(f"edgefleet upload: {args.file} is not a file", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_upload(args))
    except (StateError, UploadError, aiohttp.ClientError) as exc:
        print(f"edgefleet upload: {exc}", file=sys.stderr)
        return 1
