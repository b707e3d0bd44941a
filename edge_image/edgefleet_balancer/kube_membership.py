"""Edge membership from Kubernetes: the ready endpoints of the edges' Service, watched through the API (all live
ones when none is ready: ``members_from_slices``).

Needs only ``get``/``list``/``watch`` on ``discovery.k8s.io/endpointslices`` in the edges' namespace
(the operator grants exactly that to the balancer's ServiceAccount).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

logger = logging.getLogger(__name__)

Members = list[tuple[str, str, str | None]]
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def members_from_slices(
    slices: Iterable[Mapping[str, Any]], edge_port: int, admin_port: int | None
) -> tuple[Members, bool]:
    """(name, data URL, admin URL) for every ready endpoint, named after the pod when known; and whether none was
    ready, so the live but not-ready ones were taken instead (``True``: panic routing).

    Panic routing, as Envoy's panic threshold does it: an edge reports not ready while it cannot apply purges (the
    purge bus is unreachable) or has not caught up with them yet. When that is true of *every* edge, as it is during
    a Redis outage, routing only to ready edges would answer every shopper 503, a whole-shop outage for a cache that
    is merely unable to hear of purges that cannot be issued either (they wait in the origin's outbox). So with no
    ready edge, the not-ready ones that are not terminating stay in the ring; HAProxy's own health checks of each
    edge's ``/healthz`` still take out any that are dead. Terminating endpoints never take traffic."""
    ready: dict[str, tuple[str, str, str | None]] = {}
    not_ready: dict[str, tuple[str, str, str | None]] = {}
    for endpoint_slice in slices:
        for endpoint in endpoint_slice.get("endpoints") or ():
            conditions = endpoint.get("conditions") or {}
            addresses = endpoint.get("addresses") or ()
            if conditions.get("terminating") is True or not addresses:
                continue
            address = addresses[0]
            host = f"[{address}]" if ":" in address else address
            target = endpoint.get("targetRef") or {}
            name = target.get("name") or address
            admin = f"http://{host}:{admin_port}" if admin_port else None
            chosen = not_ready if conditions.get("ready") is False else ready
            chosen[name] = (name, f"http://{host}:{edge_port}", admin)
    members, panic = (ready, False) if ready or not not_ready else (not_ready, True)
    return [members[name] for name in sorted(members)], panic


class EndpointSliceWatcher:
    """Lists, then watches, the Service's EndpointSlices in a thread; calls ``on_change`` on the loop."""

    def __init__(
        self,
        namespace: str,
        service: str,
        edge_port: int,
        admin_port: int | None,
        on_change: Callable[[Members], None],
        loop: asyncio.AbstractEventLoop,
        kubeconfig: str | None = None,
    ) -> None:
        self.namespace = namespace
        self.service = service
        self.edge_port = edge_port
        self.admin_port = admin_port
        self.on_change = on_change
        self.loop = loop
        self.kubeconfig = kubeconfig
        self.panic = False
        """Whether the last membership was panic routing (no edge ready)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="endpointslice-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _client(self) -> Any:
        from kubernetes import client, config

        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config(config_file=self.kubeconfig)
        return client.DiscoveryV1Api()

    def _run(self) -> None:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        api = self._client()
        selector = f"{SERVICE_NAME_LABEL}={self.service}"
        while not self._stop.is_set():
            try:
                listed = api.list_namespaced_endpoint_slice(self.namespace, label_selector=selector)
                self._publish([api.api_client.sanitize_for_serialization(item) for item in listed.items])
                stream = watch.Watch().stream(
                    api.list_namespaced_endpoint_slice, self.namespace, label_selector=selector,
                    resource_version=listed.metadata.resource_version, timeout_seconds=30,
                )  # fmt: skip
                for _event in stream:
                    if self._stop.is_set():
                        return
                    # Any change: re-list, which is simpler than merging slices and always consistent.
                    listed = api.list_namespaced_endpoint_slice(self.namespace, label_selector=selector)
                    self._publish([api.api_client.sanitize_for_serialization(item) for item in listed.items])
            except ApiException as exc:
                logger.warning("Watching EndpointSlices of %s/%s failed: %s", self.namespace, self.service, exc.reason)
                self._stop.wait(2.0)  # back off before re-listing
            except Exception:  # the watcher thread must survive network trouble
                logger.exception("EndpointSlice watch broke; re-listing")
                self._stop.wait(2.0)

    def _publish(self, slices: list[Mapping[str, Any]]) -> None:
        members, panic = members_from_slices(slices, self.edge_port, self.admin_port)
        if panic and not self.panic:
            logger.warning("No edge of %s/%s is ready: routing to the %d live but not-ready edges (panic routing) "
                           "rather than answering 503", self.namespace, self.service, len(members))  # fmt: skip
        elif self.panic and not panic:
            logger.warning("Edges of %s/%s are ready again: panic routing ended", self.namespace, self.service)
        self.panic = panic
        self.loop.call_soon_threadsafe(self.on_change, members)
