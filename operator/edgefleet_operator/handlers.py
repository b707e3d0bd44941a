"""kopf handlers: thin adapters from events to ``reconcile``, to purge publication and to the purge follower.

The handlers are module-level functions in kopf's idiom, taking what they share from ``memo`` (a ``Runtime``)
and the cluster's state from kopf's indexes (``indexes.py``). They are registered on a registry built at
start-up (``register``), so that intervals and images come from the command line, not from import-time globals.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

import kopf

from edgefleet.api import GROUP, VERSION, CdnCluster, PurgeRequest
from edgefleet.api.cdncluster import CdnClusterStatus
from edgefleet.bus import PurgeMessage

from . import bus_history, indexes
from .apply import FIELD_MANAGER
from .cluster_status import read_cluster, with_conditions, write_guarded
from .context import OperatorConfig, Runtime, make_runtime
from .errors import RETRY_DELAY, mapped
from .indexes import clusters_index, edge_pods_index, members, only, purges_index
from .purge_follower import PurgeFollower
from .purges import failed_status, published_status, ready_edges
from .reconcile import observe, reconcile
from .render import MANAGED_BY, RenderOptions
from .status import parse_conditions
from .writers import EventType, ObjectRef, status_patch

__all__ = ["OperatorConfig", "Runtime", "make_runtime", "register"]

logger = logging.getLogger(__name__)


OWNED_KINDS = (
    ("apps", "v1", "deployments"),
    ("", "v1", "services"),
    ("", "v1", "serviceaccounts"),
    ("policy", "v1", "poddisruptionbudgets"),
    ("rbac.authorization.k8s.io", "v1", "roles"),
    ("rbac.authorization.k8s.io", "v1", "rolebindings"),
)
"""Everything a CdnCluster renders except the optional ServiceMonitor: watched, so that a hand edit or a
deletion is put back at once and the drift timer is only a safety net."""
MAINTAINERS = frozenset({"kube-controller-manager"})
"""Writers that maintain an owned object besides the operator (a Deployment's revision annotation)."""


def runtime_of(memo: Any) -> Runtime:
    runtime: Runtime = memo["runtime"]
    return runtime


# ---- operator life cycle -------------------------------------------------------------------------


QUIET_HANDLERS = ("Timer 'drift'", "Handler 'cluster-changed'", "Handler 'purge-changed'", "Handler 'owned-")


class QuietSuccesses(logging.Filter):
    """Drops kopf's success lines for the drift timer and the watch-event handlers ("Timer 'drift' succeeded."):
    one per fleet per interval and one per watch event, saying nothing. Failures and retries get through."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not (record.levelno <= logging.INFO and message.endswith("succeeded.")
                    and message.startswith(QUIET_HANDLERS))  # fmt: skip


def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Progress in annotations under our own prefix; no kopf fields in the typed status.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="cdn.edgefleet.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="cdn.edgefleet.io", key="last-handled-configuration"
    )
    # kopf's own log lines stay out of Events; ours are posted by EventWriter, in the Kubernetes style.
    settings.posting.level = logging.WARNING
    objects = logging.getLogger("kopf.objects")
    if not any(isinstance(f, QuietSuccesses) for f in objects.filters):
        objects.addFilter(QuietSuccesses())
    settings.peering.standalone = True
    settings.watching.server_timeout = 270


def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


async def start_purge_follower(memo: Any, **indices: Any) -> None:
    """The indexes handed to a start-up handler are the live ones: the follower reads them as they change."""
    runtime = runtime_of(memo)
    follower = PurgeFollower(runtime, purges_index(indices), clusters_index(indices), edge_pods_index(indices))
    runtime.services["purge-follower"] = follower
    runtime.tasks.append(asyncio.get_running_loop().create_task(follower.run(), name="purge-follower"))


async def stop_services(memo: Any, **_: Any) -> None:
    runtime = runtime_of(memo)
    for task in runtime.tasks:
        task.cancel()
    await asyncio.gather(*runtime.tasks, return_exceptions=True)
    runtime.tasks.clear()


# ---- CdnCluster ----------------------------------------------------------------------------------


def _event_poster(runtime: Runtime, ref: ObjectRef) -> Any:
    def post(kind: str, reason: str, message: str) -> None:
        event_type: EventType = "Warning" if kind == "Warning" else "Normal"
        runtime.events.post_blocking(ref, event_type, reason, message)

    return post


async def reconcile_cluster(body: kopf.Body, memo: Any, **_: Any) -> None:
    """Create, update, resume and the drift timer: render, apply, report.

    The status is written here, guarded by the version of ``body`` (``cluster_status``), never through kopf's
    ``patch``: kopf patches after the handler returns, unconditionally, and an owned Deployment event may have
    written a newer status by then."""
    runtime = runtime_of(memo)
    ref = ObjectRef.of(body)
    options = RenderOptions(image=runtime.config.image)
    known_epoch = (body.get("status") or {}).get("purgeBusEpoch")
    seen = await bus_history.look(runtime.bus(CdnCluster.model_validate(dict(body))), known_epoch)
    outcome = await asyncio.to_thread(reconcile, body, runtime.applier, options, _event_poster(runtime, ref))
    if seen is not None and seen[1]:
        await runtime.events.post(ref, "Warning", "PurgeBusHistoryLost",
                                  "The purge bus's Redis came back without its streams")  # fmt: skip
    generation = (body.get("metadata") or {}).get("generation")

    def recompute(fresh: Mapping[str, Any]) -> CdnClusterStatus | None:
        if (fresh.get("metadata") or {}).get("generation") != generation:
            return None  # the spec changed since it was applied: the handler for the new one reports
        status, conditions = observe(fresh, runtime.applier, outcome.problem)
        return with_conditions(status, conditions, fresh, seen)

    status = with_conditions(outcome.status, outcome.conditions, body, seen)
    await write_guarded(runtime, ref, body, status, recompute)
    runtime.reconciles.labels("error" if outcome.problem else "ok").inc()
    if outcome.problem is not None:
        raise kopf.TemporaryError(outcome.problem, delay=outcome.retry_in or RETRY_DELAY)


def owner_status(runtime: Runtime, body: Mapping[str, Any], repair: bool) -> CdnClusterStatus | None:
    """After an owned object changed, the CdnCluster's status to write (None: nothing new). ``repair``: render
    and apply (an owned object was edited or deleted); otherwise only refresh status, so that rollout progress
    never re-creates objects while the owner is being garbage-collected."""
    existing = parse_conditions((body.get("status") or {}).get("conditions"))
    if repair:
        ref = ObjectRef.of(body)
        outcome = reconcile(body, runtime.applier, RenderOptions(image=runtime.config.image),
                            _event_poster(runtime, ref))  # fmt: skip
        runtime.reconciles.labels("error" if outcome.problem else "ok").inc()
        status, conditions = outcome.status, outcome.conditions
    elif any(c.type == "Degraded" and c.status == "True" for c in existing):
        return None  # a problem is being retried by the cluster's own handler; do not report it away
    else:
        status, conditions = observe(body, runtime.applier)
    status = with_conditions(status, conditions, body)
    stored = body.get("status") or {}
    if all(stored.get(key) == value for key, value in status_patch(status).items()):
        return None  # nothing new: no write
    return status


async def refresh_owner(runtime: Runtime, namespace: str, name: str, repair: bool) -> None:
    """Read the CdnCluster, then (``owner_status``) its Deployments, and write the status, guarded."""
    body = await asyncio.to_thread(read_cluster, runtime, namespace, name)
    if body is None:
        return  # being garbage-collected with its owner
    status = await asyncio.to_thread(owner_status, runtime, body, repair)
    if status is not None:
        await write_guarded(runtime, ObjectRef.of(body), body, status,
                            lambda fresh: owner_status(runtime, fresh, repair=False))  # fmt: skip


def edited_by_others(meta: kopf.Meta) -> bool:
    """Whether someone other than the operator (and the controllers that maintain the object) changed it since
    the operator last applied it, by the object's managedFields: a hand edit to put back."""
    ours: str | None = None
    theirs: str | None = None
    for entry in meta.get("managedFields") or []:
        manager, stamp = entry.get("manager"), str(entry.get("time") or "")
        if manager == FIELD_MANAGER:
            ours = max(ours or stamp, stamp)
        elif manager not in MAINTAINERS and entry.get("subresource") != "status":
            theirs = max(theirs or stamp, stamp)
    return theirs is not None and (ours is None or theirs >= ours)


async def owned_changed(type: str | None, body: kopf.Body, meta: kopf.Meta, memo: Any, **_: Any) -> None:
    """An object the operator owns changed: put hand edits back, follow Deployment rollouts in status."""
    if type is None or type == "ADDED":
        return  # the initial listing (resume handlers reconcile every cluster), or an object the operator created
    repair = type == "DELETED" or edited_by_others(meta)
    if not repair and body.get("kind") != "Deployment":
        return  # the operator's own change; only Deployments report rollout progress worth a status refresh
    owner = next((ref for ref in meta.get("ownerReferences") or []
                  if ref.get("controller") and ref.get("kind") == "CdnCluster"), None)  # fmt: skip
    if owner is None:
        return
    runtime = runtime_of(memo)
    pending = runtime.owner_reconciles
    key = (str(meta["namespace"]), str(owner["name"]))
    if key in pending:
        pending[key] = bool(pending[key]) or repair  # coalesce: the running reconcile goes round once more
        return
    pending[key] = None
    todo = repair
    try:
        while True:
            try:
                await refresh_owner(runtime, *key, todo)
            except (kopf.TemporaryError, kopf.PermanentError) as exc:
                # The drift timer and the cluster's own handlers retry; an event handler has no retries.
                logger.warning("Failed to reconcile CdnCluster %s/%s after a change to %s: %s",
                               key[0], key[1], meta.get("name"), exc)  # fmt: skip
            again = pending[key]
            if again is None:
                break
            pending[key], todo = None, again
    finally:
        del pending[key]


def cluster_changed(memo: Any, **_: Any) -> None:
    """Any CdnCluster event: the autoscaler looks at its schedule again (clusters come, go, turn it on)."""
    autoscaler = runtime_of(memo).services.get("autoscaler")
    if autoscaler is not None:
        autoscaler.notice()


# ---- PurgeRequest --------------------------------------------------------------------------------


async def issue_purge(body: kopf.Body, meta: kopf.Meta, patch: kopf.Patch, memo: Any, **indices: Any) -> None:
    """Publish a new PurgeRequest to its fleet's bus, once: the bus id in status marks it as published."""
    runtime = runtime_of(memo)
    clusters, edge_pods = clusters_index(indices), edge_pods_index(indices)
    request = PurgeRequest.model_validate(dict(body))
    status = request.status
    if status is not None and (status.phase.finished or status.purge_id):
        return  # finished, or published before a restart: the follower takes it from here
    ref = ObjectRef.of(body)
    namespace = str(meta["namespace"])
    cluster = only(clusters, (namespace, request.spec.cluster))
    if cluster is None:
        missing = f"CdnCluster {request.spec.cluster} not found in namespace {namespace}"
        await runtime.status.write(ref, failed_status(missing, time.time()), patch)
        await runtime.events.post(ref, "Warning", "ClusterNotFound", missing)
        runtime.purges.labels("Failed").inc()
        return
    expected = ready_edges(members(edge_pods, (namespace, request.spec.cluster)))
    s = request.spec
    message = PurgeMessage(
        purge_id=str(meta["uid"]), paths=tuple(s.paths), prefixes=tuple(s.prefixes), tags=tuple(s.tags),
        all=s.all, soft=s.soft, refetch=s.refetch, issuer="operator",
    )  # fmt: skip
    with mapped(f"publishing PurgeRequest {request.metadata.name}"):
        entry_id = await runtime.bus(cluster).publish_purge(message)
    published = published_status(expected, entry_id, time.time(), request.metadata.generation)
    await runtime.status.write(ref, published, patch)
    await runtime.events.post(ref, "Normal", "Published", f"Published purge {entry_id} to {len(expected)} edges")


def purge_changed(memo: Any, **_: Any) -> None:
    """Any PurgeRequest event: the follower looks again (a new purge published, one deleted, a TTL set)."""
    follower = runtime_of(memo).services.get("purge-follower")
    if follower is not None:
        follower.notice()


# ---- registration ----------------------------------------------------------------------------------


def register(registry: kopf.OperatorRegistry, runtime: Runtime) -> None:
    """Register every handler above on ``registry``; ``runtime`` supplies the intervals."""
    cfg = runtime.config
    kopf.on.startup(registry=registry)(configure)
    kopf.on.login(registry=registry)(login)
    kopf.on.startup(registry=registry)(start_purge_follower)
    kopf.on.cleanup(registry=registry)(stop_services)

    pods = kopf.index(group="", version="v1", plural="pods", registry=registry, labels=indexes.EDGE_POD_LABELS,
                      id="edge_pods")  # fmt: skip
    pods(indexes.edge_pods)
    kopf.index(GROUP, VERSION, "purgerequests", registry=registry, id="purges")(indexes.purges)
    kopf.index(GROUP, VERSION, "cdnclusters", registry=registry, id="clusters")(indexes.clusters)

    for decorate in (
        kopf.on.create(GROUP, VERSION, "cdnclusters", registry=registry, id="reconcile"),
        kopf.on.update(GROUP, VERSION, "cdnclusters", registry=registry, field="spec", id="reconcile"),
        kopf.on.resume(GROUP, VERSION, "cdnclusters", registry=registry, id="reconcile"),
    ):
        decorate(reconcile_cluster)
    # Drift: put back hand edits the owned-object watches missed, refresh status from the Deployments.
    kopf.timer(GROUP, VERSION, "cdnclusters", registry=registry, interval=cfg.drift_interval,
               initial_delay=cfg.drift_interval, id="drift")(reconcile_cluster)  # fmt: skip
    kopf.on.event(GROUP, VERSION, "cdnclusters", registry=registry, id="cluster-changed")(cluster_changed)

    owned = {"app.kubernetes.io/managed-by": MANAGED_BY}
    for group, version, plural in OWNED_KINDS:
        watch = kopf.on.event(group=group, version=version, plural=plural, registry=registry, labels=owned,
                              id=f"owned-{plural}")  # fmt: skip
        watch(owned_changed)

    kopf.on.create(GROUP, VERSION, "purgerequests", registry=registry, id="issue")(issue_purge)
    kopf.on.resume(GROUP, VERSION, "purgerequests", registry=registry, id="issue")(issue_purge)
    kopf.on.event(GROUP, VERSION, "purgerequests", registry=registry, id="purge-changed")(purge_changed)
