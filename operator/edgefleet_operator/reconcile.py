"""One idempotent reconcile for create, update, resume and the drift timer: check references, render,
apply, read back, report. It never decides anything the pure ``render`` did not."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edgefleet.api import CdnCluster
from edgefleet.api.cdncluster import CdnClusterStatus, Condition, EdgeStatus

from .apply import Applied, Applier, ApplyError
from .errors import REFERENCE_RETRY_DELAY, RETRY_DELAY, SLOW_RETRY_DELAY
from .render import RenderOptions, console_token_secret, edge_selector_string, name_of, render, tokens_secret
from .status import fleet_conditions, replicas_of

logger = logging.getLogger(__name__)

Event = Callable[[str, str, str], None]
"""(type "Normal"/"Warning", reason, message) -> posted as a Kubernetes Event on the CdnCluster."""


class ReferenceError_(RuntimeError):
    """A Secret or PVC the spec refers to is missing or incomplete (the message says what to do)."""


@dataclass
class Outcome:
    status: CdnClusterStatus
    """Everything but the conditions, which are merged with the stored ones by the caller."""
    conditions: list[Condition]
    applied: list[Applied] = field(default_factory=list)
    problem: str | None = None
    retry_in: float | None = None


def owner_reference(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body["metadata"]
    return {"apiVersion": body["apiVersion"], "kind": body["kind"], "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": True}  # fmt: skip


def check_references(applier: Applier, cluster: CdnCluster) -> None:
    namespace = cluster.metadata.namespace
    needed: list[tuple[str, tuple[str, ...], str]] = []
    s3 = cluster.spec.origin.storage.s3
    if s3 is not None:
        secret = s3.credentials_secret
        needed.append((secret.name, (secret.access_key_key, secret.secret_key_key), "spec.origin.storage.s3"))
    console = cluster.spec.console.token_secret
    if cluster.spec.console.enabled and console is not None:
        needed.append((console.name, (console.key,), "spec.console.tokenSecret"))
    upload = cluster.spec.origin.upload_token_secret
    if upload is not None:
        needed.append((upload.name, (upload.key,), "spec.origin.uploadTokenSecret"))
    external = cluster.spec.purge_bus.external
    if external is not None and external.password_secret is not None:
        needed.append((external.password_secret.name, (external.password_secret.key,), "spec.purgeBus.external"))
    for name, keys, where in needed:
        secret_obj = applier.get("v1", "Secret", name, namespace)
        if secret_obj is None:
            raise ReferenceError_(f"Secret {name} referenced by {where} does not exist in namespace {namespace}")
        data = dict(secret_obj.to_dict().get("data") or {})
        missing = [k for k in keys if k not in data]
        if missing:
            raise ReferenceError_(f"Secret {name} referenced by {where} has no key {', '.join(missing)}")
    filesystem = cluster.spec.origin.storage.filesystem
    pvc = filesystem.pvc if filesystem is not None else None
    if pvc is not None and applier.get("v1", "PersistentVolumeClaim", pvc.claim_name, namespace) is None:
        raise ReferenceError_(
            f"PersistentVolumeClaim {pvc.claim_name} referenced by spec.origin.storage.filesystem "
            f"does not exist in namespace {namespace}"
        )


def reconcile(body: Mapping[str, Any], applier: Applier, options: RenderOptions, event: Event) -> Outcome:
    cluster = CdnCluster.model_validate(dict(body))
    try:
        check_references(applier, cluster)
        if applier.ensure_secret(tokens_secret(cluster), cluster.metadata.namespace,
                                 ("admin-token", "upload-token"), owner_reference(body)):  # fmt: skip
            event("Normal", "Created", f"Created Secret {tokens_secret(cluster)}")
        generate_console_token = cluster.spec.console.enabled and cluster.spec.console.token_secret is None
        if generate_console_token and applier.ensure_secret(
            console_token_secret(cluster), cluster.metadata.namespace, ("console-token",), owner_reference(body)
        ):
            event("Normal", "Created", f"Created Secret {console_token_secret(cluster)}")
        monitor = applier.has_kind("monitoring.coreos.com/v1", "ServiceMonitor")
        manifests = render(cluster, RenderOptions(options.image, options.redis_image, service_monitor=monitor))
        applied = []
        for manifest in manifests:
            result = applier.apply(manifest)
            applied.append(result)
            if result.action != "unchanged":
                event("Normal", result.action.capitalize(), f"{result.action.capitalize()} {result.kind} {result.name}")
    except ReferenceError_ as exc:
        event("Warning", "MissingReference", str(exc))
        return Outcome(*_status(cluster, applier, str(exc)), problem=str(exc), retry_in=REFERENCE_RETRY_DELAY)
    except ApplyError as exc:
        event("Warning", "ApplyFailed", str(exc))
        retry_in = RETRY_DELAY if exc.retryable else SLOW_RETRY_DELAY
        return Outcome(*_status(cluster, applier, str(exc)), problem=str(exc), retry_in=retry_in)
    return Outcome(*_status(cluster, applier, None), applied=applied)


def observe(
    body: Mapping[str, Any], applier: Applier, problem: str | None = None
) -> tuple[CdnClusterStatus, list[Condition]]:
    """Status from the Deployments as they are, applying nothing (for rollout progress between reconciles, and
    to recompute a reconcile's status, ``problem`` and all, when another status was written meanwhile)."""
    return _status(CdnCluster.model_validate(dict(body)), applier, problem)


def _status(cluster: CdnCluster, applier: Applier, problem: str | None) -> tuple[CdnClusterStatus, list[Condition]]:
    namespace = cluster.metadata.namespace
    deployments = {}
    for component in COMPONENTS:
        deployment = applier.get("apps/v1", "Deployment", name_of(cluster, component), namespace)
        deployments[component] = deployment.to_dict() if deployment is not None else None
    balancer_service = applier.get("v1", "Service", name_of(cluster), namespace) is not None
    return fleet_status(cluster, deployments, balancer_service, problem)


COMPONENTS = ("origin", "edge", "balancer")


def fleet_status(
    cluster: CdnCluster,
    deployments: Mapping[str, Mapping[str, Any] | None],
    balancer_service: bool,
    problem: str | None,
) -> tuple[CdnClusterStatus, list[Condition]]:
    """Pure: the status (and the conditions to merge into it) from the Deployments as read."""
    desired = {
        "origin": cluster.spec.origin.replicas,
        "edge": cluster.spec.edge.replicas.effective,
        "balancer": cluster.spec.balancer.replicas,
    }
    components = {component: replicas_of(deployments.get(component), desired[component]) for component in COMPONENTS}
    edge = components["edge"]
    endpoint = None
    if balancer_service:
        endpoint = f"http://{name_of(cluster)}.{cluster.metadata.namespace}.svc:{cluster.spec.balancer.service.port}"
    edge_status = EdgeStatus(**edge.as_status().model_dump(), selector=edge_selector_string(cluster))
    status = CdnClusterStatus(
        observed_generation=cluster.metadata.generation,
        origin=components["origin"].as_status(),
        edge=edge_status,
        balancer=components["balancer"].as_status(),
        edges_ready=f"{edge.ready}/{edge.desired}",
        endpoint=endpoint,
    )
    return status, fleet_conditions(components, cluster.metadata.generation, problem)
