"""From a CdnCluster manifest to the processes ``edgefleet up`` runs: pure, no I/O.

The manifest is validated by the same models the operator uses. What a single machine cannot honour
(S3 without credentials, replicas of the origin or balancer, Service types, resources) is reported as
a ``Deviation`` so that nobody believes the local fleet is configured like the manifest when it is not.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from edgefleet.api import CdnCluster
from edgefleet.api.units import parse_bytes, parse_seconds
from edgefleet.autoscale.decision import ScalingSpec
from edgefleet.autoscale.spec import scaling_spec
from edgefleet.embedded_redis import free_port


@dataclass(frozen=True)
class Deviation:
    field: str
    message: str


@dataclass
class Ports:
    """The balancer listens where the user said; everything else gets a free port once and keeps it, so a
    restarted edge comes back at the same address (and a busy neighbouring port never breaks start-up)."""

    balancer: int
    balancer_admin: int = field(default_factory=free_port)
    origin: int = field(default_factory=free_port)
    redis: int = field(default_factory=free_port)
    prometheus: int = field(default_factory=free_port)
    console: int = field(default_factory=free_port)
    edges: dict[int, tuple[int, int]] = field(default_factory=dict)

    def edge(self, index: int) -> tuple[int, int]:
        if index not in self.edges:
            self.edges[index] = (free_port(), free_port())
        return self.edges[index]


@dataclass(frozen=True)
class LocalPlan:
    cluster: str
    """Bus cluster name (namespace-qualified like the operator's)."""
    state_dir: Path
    ports: Ports
    min_edges: int
    max_edges: int
    initial_edges: int
    memory_bytes: int
    disk_bytes: int
    workers: int
    """Processes per edge (``spec.edge.workers``)."""
    cache_policy: str
    """``spec.edge.cache.policy``."""
    default_ttl: str
    widths: tuple[int, ...]
    formats: tuple[str, ...]
    round_widths: str
    max_pixels: int
    load_factor: float
    hash_key: str
    storage_url: str
    autoscaling_enabled: bool
    autoscale_interval: float
    prometheus_url_in_manifest: str | None
    scaling: ScalingSpec
    console_enabled: bool = False
    """``spec.console.enabled``: ``edgefleet up`` runs the web console too."""
    deviations: tuple[Deviation, ...] = field(default_factory=tuple)

    def edge_name(self, index: int) -> str:
        return f"{self.cluster.split('.')[-1]}-edge-{index}"

    def edge_cache_dir(self, index: int) -> Path:
        return self.state_dir / "edges" / self.edge_name(index)


def make_plan(cluster: CdnCluster, state_dir: Path, base_port: int) -> LocalPlan:
    spec = cluster.spec
    deviations: list[Deviation] = []
    storage_url = f"file://{(state_dir / 'origin' / 'assets').resolve()}"
    if spec.origin.storage.s3 is not None:
        s3 = spec.origin.storage.s3
        scheme_secure = "true" if s3.endpoint.startswith("https://") else "false"
        endpoint = s3.endpoint.split("://", 1)[1]
        storage_url = f"s3://{s3.bucket}?endpoint={endpoint}&secure={scheme_secure}"
        deviations.append(
            Deviation(
                "spec.origin.storage.s3.credentialsSecret",
                "Secrets do not exist locally: set EDGEFLEET_S3_ACCESS_KEY and EDGEFLEET_S3_SECRET_KEY "
                "(or use filesystem storage, the local default, with --local-storage)",
            )
        )
    elif spec.origin.storage.filesystem is not None:
        # A hostPath or PVC names storage on a Kubernetes node; locally the assets live in the state dir.
        deviations.append(
            Deviation("spec.origin.storage.filesystem", f"assets are stored under {state_dir / 'origin' / 'assets'}")
        )
    if spec.origin.replicas != 1:
        deviations.append(
            Deviation("spec.origin.replicas", f"runs 1 origin process locally, not {spec.origin.replicas}")
        )
    if spec.balancer.replicas != 1:
        deviations.append(
            Deviation("spec.balancer.replicas", f"runs 1 balancer process locally, not {spec.balancer.replicas}")
        )
    if spec.balancer.service.type != "ClusterIP" or spec.balancer.service.port != 80:
        deviations.append(Deviation("spec.balancer.service", "the balancer listens on 127.0.0.1:<--port> instead"))
    if spec.console.enabled and (spec.console.service != type(spec.console.service)() or spec.console.token_secret):
        deviations.append(Deviation("spec.console", "the console listens on 127.0.0.1 on a free port (printed at "
                                    "start) and its token is in the state dir's tokens.json"))  # fmt: skip
    for name, resources in (("origin", spec.origin.resources), ("edge", spec.edge.resources)):
        if resources is not None:
            deviations.append(Deviation(f"spec.{name}.resources", "resource requests and limits are not enforced"))
    if spec.purge_bus.external is not None:
        deviations.append(Deviation("spec.purgeBus.external", "uses the embedded Redis unless --redis URL is given"))
    if spec.autoscaling.prometheus_url:
        deviations.append(
            Deviation(
                "spec.autoscaling.prometheusUrl",
                "a local Prometheus is started when the prometheus binary is on PATH; otherwise the edges "
                "are scraped directly",
            )
        )
    replicas = spec.edge.replicas
    return LocalPlan(
        cluster=f"{cluster.metadata.namespace}.{cluster.metadata.name}",
        state_dir=state_dir,
        ports=Ports(balancer=base_port),
        min_edges=replicas.min,
        max_edges=replicas.max,
        initial_edges=replicas.effective,
        memory_bytes=parse_bytes(spec.edge.cache.memory),
        disk_bytes=parse_bytes(spec.edge.cache.disk),
        workers=spec.edge.workers,
        cache_policy=spec.edge.cache.policy,
        default_ttl=spec.origin.default_ttl,
        widths=tuple(spec.origin.images.widths),
        formats=tuple(spec.origin.images.formats),
        round_widths=spec.origin.images.round_widths,
        max_pixels=spec.origin.images.max_pixels,
        load_factor=spec.balancer.hashing.load_factor,
        hash_key=spec.balancer.hashing.key,
        storage_url=storage_url,
        autoscaling_enabled=spec.autoscaling.enabled,
        autoscale_interval=parse_seconds(spec.autoscaling.interval),
        prometheus_url_in_manifest=spec.autoscaling.prometheus_url,
        scaling=scaling_spec(spec),
        console_enabled=spec.console.enabled,
        deviations=tuple(deviations),
    )


def edgefleet_command() -> list[str]:
    """How to run this same edgefleet installation as a child process."""
    return [sys.executable, "-m", "edgefleet.cli"]


def origin_command(plan: LocalPlan, redis_url: str) -> list[str]:
    return [
        *edgefleet_command(), "origin",
        "--listen", f"127.0.0.1:{plan.ports.origin}",
        "--storage", plan.storage_url,
        "--redis", redis_url,
        "--cluster", plan.cluster,
        "--default-ttl", plan.default_ttl,
        "--widths", ",".join(map(str, plan.widths)),
        "--formats", ",".join(plan.formats),
        "--round-widths", plan.round_widths,
        "--max-pixels", str(plan.max_pixels),
        "--variant-cache-dir", str(plan.state_dir / "origin" / "variants"),
    ]  # fmt: skip


def edge_command(plan: LocalPlan, index: int, redis_url: str) -> list[str]:
    data, admin = plan.ports.edge(index)
    return [
        *edgefleet_command(), "edge",
        "--listen", f"127.0.0.1:{data}",
        "--admin-listen", f"127.0.0.1:{admin}",
        "--origin", f"http://127.0.0.1:{plan.ports.origin}",
        "--memory", str(plan.memory_bytes),
        "--disk", str(plan.disk_bytes),
        "--cache-dir", str(plan.edge_cache_dir(index)),
        "--redis", redis_url,
        "--cluster", plan.cluster,
        "--name", plan.edge_name(index),
        *(("--workers", str(plan.workers)) if plan.workers > 1 else ()),
        "--cache-policy", plan.cache_policy,
    ]  # fmt: skip


def balancer_command(plan: LocalPlan, redis_url: str) -> list[str]:
    return [
        *edgefleet_command(), "balancer",
        "--listen", f"127.0.0.1:{plan.ports.balancer}",
        "--admin-listen", f"127.0.0.1:{plan.ports.balancer_admin}",
        "--load-factor", str(plan.load_factor),
        "--hash-key", plan.hash_key,
        "--redis", redis_url,
        "--cluster", plan.cluster,
    ]  # fmt: skip


def console_command(
    plan: LocalPlan, redis_url: str, fleet_url: str, origin_url: str, prometheus: str | None
) -> list[str]:
    """Tokens go by environment (EDGEFLEET_CONSOLE_TOKEN, _UPLOAD_TOKEN, _ADMIN_TOKEN), never in ``ps``."""
    return [
        *edgefleet_command(), "console",
        "--listen", f"127.0.0.1:{plan.ports.console}",
        "--origin", origin_url,
        "--fleet", fleet_url,
        "--redis", redis_url,
        "--cluster", plan.cluster,
        "--state-dir", str(plan.state_dir),
        "--widths", ",".join(map(str, plan.widths)),
        "--formats", ",".join(plan.formats),
        *(("--prometheus-url", prometheus) if prometheus else ()),
    ]  # fmt: skip
