"""kopf handlers: thin adapters from events to ``reconcile`` and to purge progress.

Handlers are registered on a registry built at start-up (``register``) so that intervals and images come
from the command line, not from globals read at import time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import kopf
import redis.asyncio as aioredis
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from prometheus_client import CollectorRegistry, Counter, Histogram

from edgefleet import metric_names as names
from edgefleet.api import GROUP, VERSION, CdnCluster, PurgePhase, PurgeRequest
from edgefleet.api.units import parse_seconds
from edgefleet.bus import BusError, PurgeBus, PurgeMessage

from .apply import Applier
from .purges import progress
from .reconcile import observe, reconcile
from .render import MANAGED_BY, RenderOptions, bus_cluster, bus_url, edge_selector_string
from .status import merge_conditions, now_rfc3339

logger = logging.getLogger(__name__)


@dataclass
class OperatorConfig:
    image: str = RenderOptions.image
    drift_interval: float = 60.0
    purge_poll_interval: float = 0.5
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

    def __post_init__(self) -> None:
        self.reconciles = Counter(names.OPERATOR_RECONCILES.removesuffix("_total"), "Reconciles.", ["result"],
                                  registry=self.registry)  # fmt: skip
        self.purges = Counter(names.OPERATOR_PURGES.removesuffix("_total"), "Finished purges.", ["phase"],
                              registry=self.registry)  # fmt: skip
        self.purge_duration = Histogram(names.OPERATOR_PURGE_DURATION, "Purge propagation time.",
                                        buckets=names.LATENCY_BUCKETS, registry=self.registry)  # fmt: skip

    def bus(self, cluster: CdnCluster) -> PurgeBus:
        url = self.config.bus_url_override or bus_url(cluster)
        client = self.buses.get(url)
        if client is None:
            client = self.buses[url] = aioredis.Redis.from_url(url, socket_timeout=5)
        return PurgeBus(client, bus_cluster(cluster))


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()


def _rfc3339(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def register(registry: kopf.OperatorRegistry, runtime: Runtime) -> None:
    cfg = runtime.config

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Progress in annotations under our own prefix; no kopf fields in the typed status.
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="cdn.edgefleet.io")
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix="cdn.edgefleet.io", key="last-handled-configuration"
        )
        # kopf's own log lines stay out of Events; ours are posted with kopf.event, in the Kubernetes style.
        settings.posting.level = logging.WARNING
        settings.peering.standalone = True
        settings.watching.server_timeout = 270

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    def run_reconcile(body: kopf.Body, patch: kopf.Patch) -> None:
        def event(kind: str, reason: str, message: str) -> None:
            kopf.event(body, type=kind, reason=reason, message=message)

        outcome = reconcile(body, runtime.applier, RenderOptions(image=cfg.image), event)
        status = dict(outcome.status)
        conditions = status.pop("_conditions")
        existing = (body.get("status") or {}).get("conditions") or []
        patch.status.update(status)
        patch.status["conditions"] = merge_conditions(existing, conditions)
        runtime.reconciles.labels("error" if outcome.problem else "ok").inc()
        if outcome.problem is not None:
            raise kopf.TemporaryError(outcome.problem, delay=outcome.retry_in or 10.0)

    @kopf.on.create(GROUP, VERSION, "cdnclusters", registry=registry)
    @kopf.on.update(GROUP, VERSION, "cdnclusters", registry=registry, field="spec")
    @kopf.on.resume(GROUP, VERSION, "cdnclusters", registry=registry)
    def on_change(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        run_reconcile(body, patch)

    @kopf.timer(GROUP, VERSION, "cdnclusters", registry=registry, interval=cfg.drift_interval,
                initial_delay=cfg.drift_interval)  # fmt: skip
    def drift(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        """Put back hand edits and deleted objects, and refresh status from the Deployments."""
        run_reconcile(body, patch)

    # ---- owned objects: react to hand edits, deletions and rollout progress without waiting for the timer ----

    pending: dict[tuple[str, str], bool | None] = {}
    """Clusters being reconciled from owned-object events -> None, or whether the events that arrived meanwhile
    call for a repair (True) or a status refresh (False)."""

    def reconcile_owner(namespace: str, name: str, repair: bool) -> None:
        """``repair``: render and apply (an owned object was edited or deleted); otherwise only refresh status,
        so that rollout progress never re-creates objects while the owner is being garbage-collected."""
        try:
            body = runtime.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "cdnclusters", name)
        except k8s.ApiException as exc:
            if exc.status == 404:
                return  # being garbage-collected with its owner
            raise
        if body["metadata"].get("deletionTimestamp"):
            return
        existing = (body.get("status") or {}).get("conditions") or []
        if repair:

            def event(kind: str, reason: str, message: str) -> None:
                kopf.event(body, type=kind, reason=reason, message=message)

            outcome = reconcile(body, runtime.applier, RenderOptions(image=cfg.image), event)
            runtime.reconciles.labels("error" if outcome.problem else "ok").inc()
            status = dict(outcome.status)
        elif any(c.get("type") == "Degraded" and c.get("status") == "True" for c in existing):
            return  # a problem is being retried by the cluster's own handler; do not report it away
        else:
            status = observe(body, runtime.applier)
        conditions = status.pop("_conditions")
        status["conditions"] = merge_conditions(existing, conditions)
        try:
            runtime.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, "cdnclusters", name, {"status": status}
            )
        except k8s.ApiException as exc:
            if exc.status != 404:
                raise

    async def owned_changed(type: str | None, body: kopf.Body, meta: kopf.Meta, **_: Any) -> None:
        if type is None:
            return  # the initial listing: resume handlers already reconcile every cluster
        # Deleted, or its spec changed (a Service has no status churn; a Deployment's generation runs ahead of
        # observedGeneration until its controller sees the change): put it back. Otherwise it is rollout progress.
        observed = (body.get("status") or {}).get("observedGeneration")
        repair = type == "DELETED" or body.get("kind") == "Service" or observed != meta.get("generation")
        owner = next((ref for ref in meta.get("ownerReferences") or []
                      if ref.get("controller") and ref.get("kind") == "CdnCluster"), None)  # fmt: skip
        if owner is None:
            return
        key = (str(meta["namespace"]), str(owner["name"]))
        if key in pending:
            pending[key] = bool(pending[key]) or repair  # coalesce: the running reconcile goes round once more
            return
        pending[key] = None
        todo = repair
        try:
            while True:
                try:
                    await asyncio.to_thread(reconcile_owner, *key, todo)
                except k8s.ApiException as exc:
                    # The drift timer and the cluster's own handlers retry; an event handler has no retries.
                    logger.warning("Failed to reconcile CdnCluster %s/%s after a change to %s: %s",
                                   key[0], key[1], meta.get("name"), exc.reason)  # fmt: skip
                again = pending[key]
                if again is None:
                    break
                pending[key], todo = None, again
        finally:
            del pending[key]

    owned = {"app.kubernetes.io/managed-by": MANAGED_BY}
    for group, version, plural in [("apps", "v1", "deployments"), ("", "v1", "services")]:
        kopf.on.event(group=group, version=version, plural=plural, registry=registry, labels=owned)(owned_changed)

    # ---- PurgeRequest ----------------------------------------------------------------------------

    def ready_edges(cluster: CdnCluster) -> list[str]:
        pods = runtime.core.list_namespaced_pod(
            cluster.metadata.namespace, label_selector=edge_selector_string(cluster)
        )
        ready = []
        for pod in pods.items:
            if pod.metadata.deletion_timestamp is not None:
                continue
            conditions = (pod.status.conditions if pod.status else None) or []
            if any(c.type == "Ready" and c.status == "True" for c in conditions):
                ready.append(pod.metadata.name)
        return sorted(ready)

    def present_edges(cluster: CdnCluster) -> set[str]:
        pods = runtime.core.list_namespaced_pod(
            cluster.metadata.namespace, label_selector=edge_selector_string(cluster)
        )
        return {pod.metadata.name for pod in pods.items}

    def load_cluster(namespace: str, name: str) -> CdnCluster | None:
        try:
            body = runtime.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "cdnclusters", name)
        except k8s.ApiException as exc:
            if exc.status == 404:
                return None
            raise kopf.TemporaryError(f"reading CdnCluster {name}: {exc.reason}", delay=5) from exc
        return CdnCluster.model_validate(body)

    @kopf.on.create(GROUP, VERSION, "purgerequests", registry=registry)
    @kopf.on.resume(GROUP, VERSION, "purgerequests", registry=registry)
    async def issue_purge(body: kopf.Body, meta: kopf.Meta, spec: kopf.Spec, status: kopf.Status,
                          patch: kopf.Patch, **_: Any) -> None:  # fmt: skip
        current: dict[str, Any] = dict(status or {})
        if current.get("phase") in (PurgePhase.COMPLETE, PurgePhase.FAILED):
            return
        if current.get("purgeId"):
            return  # already published (this is a resume after a restart): the timer follows it up
        request = PurgeRequest.model_validate(dict(body))
        cluster = await asyncio.to_thread(load_cluster, meta["namespace"], request.spec.cluster)
        if cluster is None:
            missing = f"CdnCluster {request.spec.cluster} not found in namespace {meta['namespace']}"
            patch.status.update({"phase": "Failed", "message": missing, "completedAt": now_rfc3339()})
            kopf.event(body, type="Warning", reason="ClusterNotFound", message=missing)
            runtime.purges.labels("Failed").inc()
            return
        expected = await asyncio.to_thread(ready_edges, cluster)
        s = request.spec
        message = PurgeMessage(
            purge_id=meta["uid"], paths=tuple(s.paths), prefixes=tuple(s.prefixes), tags=tuple(s.tags),
            all=s.all, soft=s.soft, refetch=s.refetch, issuer="operator",
        )  # fmt: skip
        try:
            entry_id = await runtime.bus(cluster).publish_purge(message)
        except BusError as exc:
            raise kopf.TemporaryError(f"purge bus unreachable: {exc}", delay=5) from exc
        started = time.time()
        patch.status.update({
            "phase": "Propagating", "purgeId": entry_id, "expectedEdges": expected, "acknowledgedEdges": [],
            "pendingEdges": expected, "acked": f"0/{len(expected)}", "startedAt": _rfc3339(started),
            "message": f"Published to {len(expected)} edges", "observedGeneration": meta.get("generation"),
        })  # fmt: skip
        kopf.event(
            body, type="Normal", reason="Published", message=f"Published purge {entry_id} to {len(expected)} edges"
        )

    # Purges in flight are followed, and finished ones expired, by one operator-wide loop rather than by
    # kopf timers on each PurgeRequest: timers put a finalizer on every object they serve, and a timer that
    # deletes its own object sometimes leaves that finalizer behind (nolar/kopf#1305), so expired requests
    # hung in Terminating. The loop holds no finalizer; a user deleting a PurgeRequest is never blocked.

    def list_purges() -> list[dict[str, Any]]:
        if cfg.namespaces:
            items: list[dict[str, Any]] = []
            for namespace in cfg.namespaces:
                listed = runtime.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "purgerequests")
                items += listed.get("items", [])
            return items
        return list(runtime.custom.list_cluster_custom_object(GROUP, VERSION, "purgerequests").get("items", []))

    def post_event(body: dict[str, Any], kind: str, reason: str, message: str) -> None:
        """An Event on ``body`` from outside any kopf handler (kopf.event needs a handler's context)."""
        meta = body["metadata"]
        stamp = now_rfc3339()
        event = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": body["apiVersion"], "kind": body["kind"], "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta["uid"]},
            "reason": reason, "message": message, "type": kind, "count": 1,
            "firstTimestamp": stamp, "lastTimestamp": stamp, "source": {"component": "edgefleet-operator"},
        }  # fmt: skip
        try:
            runtime.core.create_namespaced_event(meta["namespace"], event)
        except k8s.ApiException as exc:
            logger.warning("Could not post event %s on %s: %s", reason, meta["name"], exc.reason)

    async def advance(body: dict[str, Any], status: dict[str, Any]) -> None:
        meta = body["metadata"]
        request = PurgeRequest.model_validate(body)
        cluster = await asyncio.to_thread(load_cluster, meta["namespace"], request.spec.cluster)
        expected = list(status.get("expectedEdges") or [])
        started = _epoch(status.get("startedAt")) or time.time()
        timeout = parse_seconds(cluster.spec.purge_bus.timeout) if cluster else 0.0
        acks = await runtime.bus(cluster).acknowledgements(status["purgeId"]) if cluster else {}
        present = await asyncio.to_thread(present_edges, cluster) if cluster else set()
        result = progress(expected, acks, present, started, time.time(), timeout)
        update: dict[str, Any] = {
            "acknowledgedEdges": result.acknowledged, "pendingEdges": result.pending,
            "acked": f"{len(result.acknowledged)}/{len(expected)}", "message": result.message,
        }  # fmt: skip
        if result.phase is not PurgePhase.PROPAGATING:
            update.update({"phase": result.phase.value, "completedAt": now_rfc3339(), "durationMs": result.duration_ms})
        elif all(status.get(key) == value for key, value in update.items()):
            return  # nothing new: no write, no resourceVersion churn
        await asyncio.to_thread(
            runtime.custom.patch_namespaced_custom_object_status, GROUP, VERSION, meta["namespace"],
            "purgerequests", meta["name"], {"status": update},
        )  # fmt: skip
        if result.phase is not PurgePhase.PROPAGATING:
            runtime.purges.labels(result.phase.value).inc()
            if result.duration_ms is not None:
                runtime.purge_duration.observe(result.duration_ms / 1000)
            kind = "Normal" if result.phase is PurgePhase.COMPLETE else "Warning"
            await asyncio.to_thread(post_event, body, kind, result.phase.value, result.message)

    async def expire(body: dict[str, Any], status: dict[str, Any]) -> None:
        meta = body["metadata"]
        ttl = (body.get("spec") or {}).get("ttlSecondsAfterFinished")
        finished = _epoch(status.get("completedAt"))
        if ttl is None or finished is None or time.time() < finished + ttl or meta.get("deletionTimestamp"):
            return
        try:
            await asyncio.to_thread(
                runtime.custom.delete_namespaced_custom_object, GROUP, VERSION, meta["namespace"], "purgerequests",
                meta["name"],
            )  # fmt: skip
        except k8s.ApiException as exc:
            if exc.status != 404:
                raise
            return
        logger.info("Deleted PurgeRequest %s/%s %ss after it finished", meta["namespace"], meta["name"], ttl)

    async def follow_purges_forever() -> None:
        while True:
            try:
                for body in await asyncio.to_thread(list_purges):
                    status = body.get("status") or {}
                    if status.get("phase") == "Propagating" and status.get("purgeId"):
                        await advance(body, status)
                    elif status.get("completedAt"):
                        await expire(body, status)
            except (k8s.ApiException, BusError, OSError) as exc:
                logger.warning("Following purges failed (%s); retrying", exc)
            except Exception:  # the loop must outlive any one bad object; say what broke
                logger.exception("Following purges failed; retrying")
            await asyncio.sleep(cfg.purge_poll_interval)  # the polling period of purge progress

    follower: list[asyncio.Task[None]] = []

    @kopf.on.startup(registry=registry)
    async def start_following_purges(**_: Any) -> None:
        follower.append(asyncio.get_running_loop().create_task(follow_purges_forever()))

    @kopf.on.cleanup(registry=registry)
    async def stop_following_purges(**_: Any) -> None:
        for task in follower:
            task.cancel()


def make_runtime(config: OperatorConfig) -> Runtime:
    try:
        k8s_config.load_incluster_config()
    except k8s_config.ConfigException:
        k8s_config.load_kube_config()
    api_client = k8s.ApiClient()
    return Runtime(config, Applier(api_client), k8s.CoreV1Api(api_client), k8s.CustomObjectsApi(api_client))
