"""What every handler shares, built once at start-up and handed to kopf as ``memo``: settings, API clients,
the writers of status and Events, bus connections and metrics."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from edgefleet import metric_names as names
from edgefleet.api import CdnCluster
from edgefleet.bus import PurgeBus

from .apply import Applier
from .render import RenderOptions, bus_cluster, bus_url
from .writers import EventWriter, StatusWriter


@dataclass
class OperatorConfig:
    image: str = RenderOptions.image
    drift_interval: float = 600.0
    """Seconds between drift checks of each fleet: a safety net, since every owned kind is watched and a hand
    edit is put back from its watch event. Each check applies every object of the fleet (about 30 requests)."""
    ack_poll_interval: float = 0.25
    """Seconds between reads of the bus's acknowledgements while purges are in flight (Redis, not the API)."""
    namespaces: tuple[str, ...] = ()
    """Watched namespaces; empty means every namespace."""
    bus_url_override: str | None = None
    """Tests and out-of-cluster runs: reach every fleet's bus here instead of its in-cluster Service."""


@dataclass
class Runtime:
    config: OperatorConfig
    applier: Applier
    core: k8s.CoreV1Api
    custom: k8s.CustomObjectsApi
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    buses: dict[str, aioredis.Redis] = field(default_factory=dict)
    services: dict[str, Any] = field(default_factory=dict)
    """Long-lived helpers started at start-up (the purge follower, the autoscaler), by name."""
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    owner_reconciles: dict[tuple[str, str], bool | None] = field(default_factory=dict)
    """Clusters being reconciled after owned-object events -> None, or whether the events that arrived
    meanwhile call for a repair (True) or a status refresh (False)."""

    def __post_init__(self) -> None:
        self.status = StatusWriter(self.custom)
        self.events = EventWriter(self.core)
        self.reconciles = Counter(names.OPERATOR_RECONCILES.removesuffix("_total"), "Reconciles.", ["result"],
                                  registry=self.registry)  # fmt: skip
        self.purges = Counter(names.OPERATOR_PURGES.removesuffix("_total"), "Finished purges.", ["phase"],
                              registry=self.registry)  # fmt: skip
        self.purge_duration = Histogram(names.OPERATOR_PURGE_DURATION, "Purge propagation time.",
                                        buckets=names.LATENCY_BUCKETS, registry=self.registry)  # fmt: skip
        self.scaling_decisions = Counter(names.OPERATOR_SCALING_DECISIONS.removesuffix("_total"),
                                         "Autoscaling decisions.", ["direction"], registry=self.registry)  # fmt: skip
        self.autoscaler_healthy = Gauge(names.OPERATOR_AUTOSCALER_HEALTHY,
                                        "1 when the autoscaler has the metrics it needs.", ["namespace", "cluster"],
                                        registry=self.registry)  # fmt: skip

    def bus(self, cluster: CdnCluster) -> PurgeBus:
        url = self.config.bus_url_override or bus_url(cluster)
        client = self.buses.get(url)
        if client is None:
            client = self.buses[url] = aioredis.Redis.from_url(url, socket_timeout=5)
        return PurgeBus(client, bus_cluster(cluster))


def make_runtime(config: OperatorConfig) -> Runtime:
    try:
        k8s_config.load_incluster_config()
    except k8s_config.ConfigException:
        k8s_config.load_kube_config()
    api_client = k8s.ApiClient()
    return Runtime(config, Applier(api_client), k8s.CoreV1Api(api_client), k8s.CustomObjectsApi(api_client))
