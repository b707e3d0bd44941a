"""From a CdnCluster spec to each component's command-line arguments: the one place that knows the flags.

The operator (``render``) and the local runtime (``edgefleet up``) both build their argument lists here, so a
spec field is honoured in both or in neither. What differs between the two is only *where* things are
(listen addresses, the origin's and the bus's URLs, directories, the member's name): a ``Placement`` each
caller fills in. Everything that comes from the spec is decided here, once.

Arguments are ``--flag=value`` strings (one list item per flag), in a fixed order, so rendered manifests stay
byte-identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from edgefleet.api import CdnClusterSpec
from edgefleet.api.cdncluster import S3Storage
from edgefleet.api.units import parse_bytes, parse_seconds

DEFAULT_CACHE_POLICY = "s3fifo-gdsf"
"""The edge's own default (``edgefleet edge --cache-policy``): left out of the arguments when chosen (a test checks
that it is ``edgefleet_edge.tiers.DEFAULT_POLICY``)."""


@dataclass(frozen=True)
class OriginPlacement:
    listen: str
    storage: str
    """``file:///DIR`` or the S3 URL from ``s3_storage_url``."""
    redis: str
    cluster: str
    variant_cache_dir: str
    log_format: str | None = None


@dataclass(frozen=True)
class EdgePlacement:
    listen: str
    admin_listen: str
    origin: str
    cache_dir: str
    redis: str
    cluster: str
    name: str
    log_format: str | None = None


@dataclass(frozen=True)
class BalancerPlacement:
    listen: str
    admin_listen: str
    redis: str
    cluster: str
    membership: tuple[str, ...] = ()
    """Where the balancer learns its members (e.g. ``--kubernetes-service=ns/name``), ahead of the spec's flags."""
    haproxy: tuple[str, ...] = ()
    """Which HAProxy binary runs the data path and with how many threads (the image's, sized to the pod's CPU
    limit); locally, the one on PATH."""
    name: str | None = None
    log_format: str | None = None


PLACEMENT_FLAGS = frozenset(
    {
        "--listen", "--admin-listen", "--storage", "--redis", "--cluster", "--variant-cache-dir", "--origin",
        "--cache-dir", "--name", "--log-format", "--kubernetes-service", "--edge-port", "--edge-admin-port",
        "--haproxy", "--haproxy-threads",
    }
)  # fmt: skip
"""Flags that say where things are rather than what the spec asks for (they differ between Kubernetes and
one machine by design)."""


def s3_storage_url(s3: S3Storage) -> str:
    """The origin's ``--storage`` for an S3 bucket: endpoint with its scheme, and the region when set."""
    secure = "true" if s3.endpoint.startswith("https://") else "false"
    url = f"s3://{s3.bucket}?endpoint={s3.endpoint}&secure={secure}"
    if s3.region:
        url += f"&region={quote(s3.region, safe='')}"
    return url


def origin_args(spec: CdnClusterSpec, place: OriginPlacement) -> list[str]:
    images = spec.origin.images
    args = [
        "origin",
        f"--listen={place.listen}",
        f"--storage={place.storage}",
        f"--redis={place.redis}",
        f"--cluster={place.cluster}",
        f"--default-ttl={spec.origin.default_ttl}",
        f"--widths={','.join(str(w) for w in images.widths)}",
        f"--formats={','.join(images.formats)}",
        f"--round-widths={images.round_widths}",
        f"--max-pixels={images.max_pixels}",
        f"--variant-cache-dir={place.variant_cache_dir}",
    ]
    if place.log_format is not None:
        args.append(f"--log-format={place.log_format}")
    return args


def edge_args(spec: CdnClusterSpec, place: EdgePlacement) -> list[str]:
    edge = spec.edge
    args = [
        "edge",
        f"--listen={place.listen}",
        f"--admin-listen={place.admin_listen}",
        f"--origin={place.origin}",
        f"--memory={parse_bytes(edge.cache.memory)}",
        f"--disk={parse_bytes(edge.cache.disk)}",
        f"--cache-dir={place.cache_dir}",
        f"--redis={place.redis}",
        f"--cluster={place.cluster}",
        f"--name={place.name}",
        f"--grace={int(parse_seconds(edge.cache.grace))}s",
    ]
    if place.log_format is not None:
        args.append(f"--log-format={place.log_format}")
    # Only when they differ from the edge's defaults, so existing manifests render exactly as before.
    if edge.workers > 1:
        args.append(f"--workers={edge.workers}")
    if edge.cache.policy != DEFAULT_CACHE_POLICY:
        args.append(f"--cache-policy={edge.cache.policy}")
    return args


def balancer_args(spec: CdnClusterSpec, place: BalancerPlacement) -> list[str]:
    hashing = spec.balancer.hashing
    args = [
        "balancer",
        *place.haproxy,
        f"--listen={place.listen}",
        f"--admin-listen={place.admin_listen}",
        *place.membership,
        f"--load-factor={hashing.load_factor}",
        f"--hash-key={hashing.key}",
        f"--redis={place.redis}",
        f"--cluster={place.cluster}",
    ]
    if place.name is not None:
        args.append(f"--name={place.name}")
    if place.log_format is not None:
        args.append(f"--log-format={place.log_format}")
    return args


def spec_flags(args: list[str]) -> list[str]:
    """``args`` without the placement flags: what the spec decided (for comparing two renderings)."""
    return [arg for arg in args if arg.split("=", 1)[0] not in PLACEMENT_FLAGS]
