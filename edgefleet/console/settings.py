"""The console's one settings object, built at start-up from flags and ``EDGEFLEET_*`` variables."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path


class ConsoleConfigError(ValueError):
    """The console cannot start with this configuration (the message says which setting)."""


@dataclass(frozen=True)
class ConsoleSettings:
    listen: tuple[str, int]
    console_token: str
    """The token people sign in with (the fleet's console token Secret)."""
    origin_url: str
    """Origin base URL: the upload API and object metadata."""
    upload_token: str
    """Bearer token of the origin's upload API; never sent to browsers."""
    fleet_url: str
    """Where shoppers' traffic goes (the balancer): thumbnails are fetched through it, warming the cache."""
    redis_url: str | None
    redis_password: str | None
    cluster: str
    """The cluster's name on the purge bus."""
    admin_token: str | None
    """Bearer token for the edges' admin /metrics."""
    state_dir: Path | None = None
    """A local fleet's state directory (``edgefleet up``): edges and scaling decisions come from it."""
    edges_dns: str | None = None
    """In Kubernetes: the headless edge Service's DNS name; its addresses are the ready edges."""
    edge_admin_port: int = 9090
    prometheus_url: str | None = None
    prometheus_step: float = 15.0
    """Seconds between chart points when the charts come from Prometheus."""
    widths: tuple[int, ...] = (320, 640, 1280)
    formats: tuple[str, ...] = ("avif", "webp", "jpeg")
    max_upload_size: int = 100 * 1024 * 1024
    secure_cookies: bool = False
    """Mark cookies Secure (set when the console is served over HTTPS, e.g. behind an Ingress)."""
    sample_interval: float = 5.0
    """How often the console samples the edges' metrics for its charts when there is no Prometheus."""
    session_hours: float = 8.0


def _required(value: str | None, flag: str) -> str:
    if not value:
        raise ConsoleConfigError(f"{flag} is required")
    return value


def settings_from_args(args: argparse.Namespace) -> ConsoleSettings:
    token = _required(args.console_token, "--console-token (or EDGEFLEET_CONSOLE_TOKEN)")
    if len(token) < 16:
        raise ConsoleConfigError("the console token must be at least 16 characters")
    if args.state_dir is None and args.edges_dns is None:
        raise ConsoleConfigError("say where the edges are: --state-dir (local fleet) or --edges-dns (Kubernetes)")
    return ConsoleSettings(
        listen=args.listen,
        console_token=token,
        origin_url=_required(args.origin, "--origin").rstrip("/"),
        upload_token=_required(args.upload_token, "--upload-token (or EDGEFLEET_UPLOAD_TOKEN)"),
        fleet_url=_required(args.fleet, "--fleet").rstrip("/"),
        redis_url=args.redis,
        redis_password=args.redis_password,
        cluster=args.cluster,
        admin_token=args.admin_token,
        state_dir=args.state_dir,
        edges_dns=args.edges_dns,
        edge_admin_port=args.edge_admin_port,
        prometheus_url=(args.prometheus_url or "").rstrip("/") or None,
        prometheus_step=args.prometheus_step,
        widths=tuple(args.widths),
        formats=tuple(args.formats),
        max_upload_size=args.max_upload_size,
        secure_cookies=args.secure_cookies,
        sample_interval=args.sample_interval,
    )
