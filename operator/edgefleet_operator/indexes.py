"""In-memory views of the cluster kept by kopf from its watch streams (``@kopf.index``), so that handlers
and the purge follower never LIST: edge pods by fleet, PurgeRequests and CdnClusters by name."""

from __future__ import annotations

from typing import Any

import kopf

from edgefleet.api import CdnCluster, PurgeRequest

from .purges import EdgePod
from .render import MANAGED_BY

Key = tuple[str, str]
"""(namespace, name); for edge pods, the name of the CdnCluster they belong to."""

EDGE_POD_LABELS = {"app.kubernetes.io/component": "edge", "app.kubernetes.io/managed-by": MANAGED_BY}


def edge_pods(namespace: str | None, name: str | None, labels: kopf.Labels, meta: kopf.Meta,
              status: kopf.Status, **_: Any) -> dict[Key, EdgePod]:  # fmt: skip
    fleet = labels.get("app.kubernetes.io/instance")
    if not namespace or not name or not fleet:
        return {}
    conditions = status.get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return {(namespace, fleet): EdgePod(name, ready, terminating=meta.get("deletionTimestamp") is not None)}


def purges(body: kopf.Body, namespace: str | None, name: str | None, logger: kopf.Logger,
           **_: Any) -> dict[Key, PurgeRequest]:  # fmt: skip
    if not namespace or not name:
        return {}
    try:
        return {(namespace, name): PurgeRequest.model_validate(dict(body))}
    except ValueError as exc:
        logger.warning("Ignored PurgeRequest %s/%s that does not match its schema: %s", namespace, name, exc)
        return {}


def clusters(body: kopf.Body, namespace: str | None, name: str | None, logger: kopf.Logger,
             **_: Any) -> dict[Key, CdnCluster]:  # fmt: skip
    if not namespace or not name:
        return {}
    try:
        return {(namespace, name): CdnCluster.model_validate(dict(body))}
    except ValueError as exc:
        logger.warning("Ignored CdnCluster %s/%s that does not match its schema: %s", namespace, name, exc)
        return {}


def only(index: kopf.Index[Key, Any], key: Key) -> Any | None:
    """The one value indexed under ``key`` (a name is unique in its namespace), or None."""
    store = index.get(key)
    return next(iter(store), None) if store is not None else None


def members(index: kopf.Index[Key, EdgePod], key: Key) -> list[EdgePod]:
    store = index.get(key)
    return list(store) if store is not None else []


# kopf hands each index to handlers as a keyword argument named by its id.


def edge_pods_index(kwargs: dict[str, Any]) -> kopf.Index[Key, EdgePod]:
    index: kopf.Index[Key, EdgePod] = kwargs["edge_pods"]
    return index


def purges_index(kwargs: dict[str, Any]) -> kopf.Index[Key, PurgeRequest]:
    index: kopf.Index[Key, PurgeRequest] = kwargs["purges"]
    return index


def clusters_index(kwargs: dict[str, Any]) -> kopf.Index[Key, CdnCluster]:
    index: kopf.Index[Key, CdnCluster] = kwargs["clusters"]
    return index
