"""``edgefleet origin``: flags (each with an ``EDGEFLEET_*`` environment twin) and the entry point."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile

from edgefleet.flags import add_flag, duration, host_port, size
from edgefleet.logs import configure_logging
from edgefleet_origin.errors import ConfigError, StorageError
from edgefleet_origin.settings import parse_formats, parse_widths, settings_from_args

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    add_flag(parser, "--listen", type=host_port, default=("0.0.0.0", 8081), help="HOST:PORT to serve on")
    add_flag(
        parser,
        "--admin-listen",
        type=host_port,
        default=None,
        help="HOST:PORT for /metrics and the /api routes (unset: on --listen, refused to requests an edge forwards)",
    )
    add_flag(
        parser,
        "--storage",
        default="file:origin-data",
        help="file:///DIR, or s3://BUCKET?endpoint=URL&secure=false&region=R "
        "(S3 credentials: EDGEFLEET_S3_ACCESS_KEY/EDGEFLEET_S3_SECRET_KEY or AWS_ACCESS_KEY_ID/"
        "AWS_SECRET_ACCESS_KEY, or the same names with _FILE naming a file)",
    )
    add_flag(parser, "--s3-access-key-file", help="file holding the S3 access key")
    add_flag(parser, "--s3-secret-key-file", help="file holding the S3 secret key")
    add_flag(parser, "--upload-token", secret=True, help="Bearer token for the upload API (unset: API disabled)")
    add_flag(parser, "--upload-token-file", help="file holding the upload token")
    add_flag(
        parser, "--webhook-token", secret=True, help="Bearer token for POST /api/events/minio (default: upload token)"
    )
    add_flag(parser, "--webhook-token-file", help="file holding the webhook token")
    add_flag(parser, "--redis", secret=True, help="Redis URL of the purge bus (unset: no change events)")
    add_flag(parser, "--redis-password", secret=True, help="password for the purge bus Redis")
    add_flag(parser, "--cluster", default="default", help="cluster name on the purge bus")
    add_flag(parser, "--default-ttl", type=duration, default=3600.0, help="CDN TTL for objects without their own")
    add_flag(parser, "--browser-ttl", type=duration, default=300.0, help="browser TTL (capped at the CDN TTL)")
    add_flag(parser, "--widths", type=parse_widths, default=(320, 640, 1280), help="allowed ?w= widths")
    add_flag(parser, "--formats", type=parse_formats, default=parse_formats("avif,webp,jpeg"), help="output formats")
    add_flag(parser, "--round-widths", choices=("up", "reject"), default="up", help="other widths: round up or 400")
    add_flag(parser, "--max-pixels", type=int, default=50_000_000, help="decompression-bomb limit (pixels)")
    add_flag(
        parser,
        "--variant-cache-dir",
        default=os.path.join(tempfile.gettempdir(), "edgefleet-variants"),
        help="where generated variants (and S3 upload staging) live; a volume or tmpfs",
    )
    add_flag(
        parser,
        "--outbox-dir",
        default="",
        help="where object changes wait while the purge bus is down (default: .outbox in file storage, "
        "else under --variant-cache-dir; give S3 origins a persistent volume)",
    )
    add_flag(parser, "--variant-cache-size", type=size, default=1 << 30, help="variant cache budget (e.g. 1Gi)")
    add_flag(parser, "--max-upload-size", type=size, default=100 * 1024 * 1024, help="largest upload (e.g. 100Mi)")
    add_flag(parser, "--image-workers", type=int, default=os.cpu_count() or 1, help="image worker processes")
    add_flag(parser, "--presign-expiry", type=duration, default=900.0, help="default lifetime of upload URLs")
    add_flag(parser, "--log-format", choices=("text", "json"), default="text", help="log format")
    add_flag(parser, "--log-level", default="INFO", help="log level")


def run(args: argparse.Namespace) -> int:
    configure_logging(args.log_format, args.log_level)
    from edgefleet_origin.server import serve

    try:
        settings = settings_from_args(args, os.environ)
        asyncio.run(serve(settings))
    except ConfigError as exc:
        log.error("Invalid configuration: %s", exc)
        return 2
    except StorageError as exc:
        log.error("Failed to start: %s", exc.reason)
        return 1
    return 0
