"""The origin's one settings object, built at start-up from flags and ``EDGEFLEET_*`` environment.

Secrets never need a flag: the upload token comes from ``EDGEFLEET_UPLOAD_TOKEN`` or a file, and S3
credentials from ``EDGEFLEET_S3_ACCESS_KEY``/``EDGEFLEET_S3_SECRET_KEY`` (or the AWS names) or files.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

from edgefleet_origin.errors import ConfigError
from edgefleet_origin.storage_s3 import S3Location
from edgefleet_origin.variants import ImageFormat, RoundWidths, VariantConfig


@dataclass(frozen=True)
class FileLocation:
    root: Path


StorageLocation = FileLocation | S3Location


@dataclass(frozen=True)
class OriginSettings:
    storage: StorageLocation
    listen: tuple[str, int] = ("127.0.0.1", 8081)
    admin_listen: tuple[str, int] | None = None
    """When set, ``/metrics`` and the ``/api`` routes are served there and not on ``listen``."""
    upload_token: str | None = field(default=None, repr=False)
    webhook_token: str | None = field(default=None, repr=False)
    redis_url: str | None = field(default=None, repr=False)
    redis_password: str | None = field(default=None, repr=False)
    cluster: str = "default"
    default_ttl: int = 3600
    browser_ttl: int = 300
    variants: VariantConfig = field(default_factory=VariantConfig)
    max_pixels: int = 50_000_000
    variant_cache_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "edgefleet-variants")
    variant_cache_size: int = 1 << 30
    outbox_dir: Path | None = None
    """Where unpublished object changes wait for the bus (default: see ``outbox_path``)."""
    max_upload_size: int = 100 * 1024 * 1024
    image_workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    presign_expiry: int = 900
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"


def outbox_path(settings: OriginSettings) -> Path:
    """The outbox directory: ``--outbox-dir``, else ``.outbox`` inside a filesystem store (as durable as the
    objects it describes; keys cannot start with a dot, so it never meets one), else ``outbox`` under the
    variant cache directory (S3: give ``--outbox-dir`` a persistent volume)."""
    if settings.outbox_dir is not None:
        return settings.outbox_dir
    if isinstance(settings.storage, FileLocation):
        return settings.storage.root / ".outbox"
    return settings.variant_cache_dir / "outbox"


def parse_storage(url: str, environ: Mapping[str, str]) -> StorageLocation:
    """``file:///srv/assets``, ``file:relative/dir`` or
    ``s3://BUCKET?endpoint=URL&secure=false&region=R&public_url=URL`` (``public_url``: the address
    presigned upload URLs are signed for, when clients cannot reach ``endpoint``)."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in {"", "localhost"}:
            raise ConfigError(f"--storage {url!r}: file URLs take no host (file:///absolute/dir)")
        path = unquote(parts.path)
        if not path:
            raise ConfigError(f"--storage {url!r}: no directory")
        return FileLocation(Path(path))
    if parts.scheme == "s3":
        return _s3_location(url, parts.netloc, parse_qs(parts.query), environ)
    raise ConfigError(f"--storage {url!r}: use file:///DIR or s3://BUCKET?endpoint=URL")


def _s3_location(url: str, bucket: str, query: dict[str, list[str]], environ: Mapping[str, str]) -> S3Location:
    if not bucket:
        raise ConfigError(f"--storage {url!r}: no bucket name")
    endpoint = (query.get("endpoint") or ["s3.amazonaws.com"])[0]
    secure_values = query.get("secure")
    secure_param = secure_values[0] if secure_values else None
    if "://" in endpoint:
        scheme_parts = urlsplit(endpoint)
        secure = scheme_parts.scheme == "https"
        endpoint = scheme_parts.netloc
    else:
        secure = True
    if secure_param is not None:
        if secure_param.lower() not in {"true", "false", "1", "0"}:
            raise ConfigError(f"--storage {url!r}: secure must be true or false")
        secure = secure_param.lower() in {"true", "1"}
    access = _secret(environ, "EDGEFLEET_S3_ACCESS_KEY", "AWS_ACCESS_KEY_ID")
    secret = _secret(environ, "EDGEFLEET_S3_SECRET_KEY", "AWS_SECRET_ACCESS_KEY")
    if not access or not secret:
        raise ConfigError(
            "S3 storage needs credentials: EDGEFLEET_S3_ACCESS_KEY and EDGEFLEET_S3_SECRET_KEY "
            "(or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or the *_FILE variants naming files)"
        )
    region = (query.get("region") or ["us-east-1"])[0]
    public_values = query.get("public_url")
    public_url = public_values[0] if public_values else None
    if public_url is not None and urlsplit(public_url).scheme not in {"http", "https"}:
        raise ConfigError(f"--storage {url!r}: public_url must be http(s)://HOST[:PORT]")
    return S3Location(bucket, endpoint, secure, region, access, secret, public_url)


def _secret(environ: Mapping[str, str], *names: str) -> str | None:
    """The first of ``NAME`` or ``NAME_FILE`` (a file holding the value, as Kubernetes mounts Secrets)."""
    for name in names:
        if environ.get(name):
            return environ[name]
        path = environ.get(name + "_FILE")
        if path:
            return read_secret_file(path, name + "_FILE")
    return None


def read_secret_file(path: str, what: str) -> str:
    try:
        value = Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc.strerror}") from exc
    if not value:
        raise ConfigError(f"{what}: {path} is empty")
    return value


def parse_widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of widths") from None
    if not widths or widths[0] <= 0 or widths[-1] > 16384:
        raise argparse.ArgumentTypeError(f"{text!r}: widths must be 1..16384, at least one")
    return widths


def parse_formats(text: str) -> tuple[ImageFormat, ...]:
    formats = []
    for part in (p.strip().lower() for p in text.split(",") if p.strip()):
        try:
            formats.append(ImageFormat("jpeg" if part == "jpg" else part))
        except ValueError:
            names = ", ".join(f.value for f in ImageFormat)
            raise argparse.ArgumentTypeError(f"unknown image format {part!r} (known: {names})") from None
    if not formats:
        raise argparse.ArgumentTypeError("at least one format is needed")
    return tuple(dict.fromkeys(formats))


def _with_key_files(args: argparse.Namespace, environ: Mapping[str, str]) -> Mapping[str, str]:
    """The ``--s3-*-key-file`` flags are the ``EDGEFLEET_S3_*_KEY_FILE`` variables by another name."""
    files = {
        "EDGEFLEET_S3_ACCESS_KEY_FILE": args.s3_access_key_file,
        "EDGEFLEET_S3_SECRET_KEY_FILE": args.s3_secret_key_file,
    }
    return {**environ, **{name: path for name, path in files.items() if path}}


def settings_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> OriginSettings:
    variant_cache_dir = Path(args.variant_cache_dir)
    upload_token = args.upload_token
    if args.upload_token_file:
        upload_token = read_secret_file(args.upload_token_file, "--upload-token-file")
    webhook_token = args.webhook_token
    if args.webhook_token_file:
        webhook_token = read_secret_file(args.webhook_token_file, "--webhook-token-file")
    return OriginSettings(
        storage=parse_storage(args.storage, _with_key_files(args, environ)),
        listen=args.listen,
        admin_listen=getattr(args, "admin_listen", None) or None,
        upload_token=upload_token or None,
        webhook_token=webhook_token or upload_token or None,
        redis_url=args.redis or None,
        redis_password=args.redis_password or None,
        cluster=args.cluster,
        default_ttl=int(args.default_ttl),
        browser_ttl=int(args.browser_ttl),
        variants=VariantConfig(args.widths, args.formats, RoundWidths(args.round_widths)),
        max_pixels=args.max_pixels,
        variant_cache_dir=variant_cache_dir,
        variant_cache_size=args.variant_cache_size,
        outbox_dir=Path(args.outbox_dir) if getattr(args, "outbox_dir", None) else None,
        max_upload_size=args.max_upload_size,
        image_workers=args.image_workers,
        presign_expiry=int(args.presign_expiry),
        log_format=args.log_format,
        log_level=args.log_level,
    )
