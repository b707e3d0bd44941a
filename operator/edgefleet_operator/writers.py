"""The operator's only writers of status and of Events.

Status is written from the pydantic status models and nothing else, so what the operator writes, the models
and the CRD schema generated from them cannot drift apart (a misspelt key would otherwise be pruned by the
API server without a word). Events are posted by one function too, in the Kubernetes style.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import kopf
from kubernetes import client as k8s

from edgefleet.api import GROUP, VERSION
from edgefleet.api.base import StatusModel

from .errors import Gone, mapped
from .status import now_rfc3339

logger = logging.getLogger(__name__)

EventType = Literal["Normal", "Warning"]
COMPONENT = "edgefleet-operator"
PLURALS = {"CdnCluster": "cdnclusters", "PurgeRequest": "purgerequests"}


@dataclass(frozen=True)
class ObjectRef:
    """Enough of an object to write its status and post Events about it."""

    kind: str
    namespace: str
    name: str
    uid: str
    api_version: str = f"{GROUP}/{VERSION}"

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> ObjectRef:
        meta = body["metadata"]
        return cls(str(body["kind"]), str(meta["namespace"]), str(meta["name"]), str(meta.get("uid") or ""),
                   str(body.get("apiVersion") or f"{GROUP}/{VERSION}"))  # fmt: skip

    @property
    def plural(self) -> str:
        return PLURALS[self.kind]


def status_patch(status: StatusModel) -> dict[str, Any]:
    """The merge patch for ``status``: the fields the caller set, camelCase, as the CRD schema names them."""
    return status.model_dump(by_alias=True, exclude_none=True, exclude_unset=True, mode="json")


class StatusWriter:
    def __init__(self, custom: k8s.CustomObjectsApi) -> None:
        self.custom = custom

    async def write(
        self, ref: ObjectRef, status: StatusModel, patch: kopf.Patch | None = None, *, resource_version: str = ""
    ) -> None:
        """Merge ``status`` into the object's status. Inside a kopf handler pass its ``patch``: kopf then
        writes it together with its own bookkeeping, in one request, after the handler returns and without a
        precondition, so only for a status no other writer writes meanwhile (not a CdnCluster's: see
        ``cluster_status``). ``resource_version``: write only if the object is still at that version (a conflict
        raises ``errors.Conflict``, a ``kopf.TemporaryError``), for a writer that computed the status from what
        it read there. A vanished object is not an error."""
        body = status_patch(status)
        if patch is not None:
            patch.status.update(body)
            return
        document: dict[str, Any] = {"status": body}
        if resource_version:
            document["metadata"] = {"resourceVersion": resource_version}
        try:
            with mapped(f"writing the status of {ref.kind} {ref.name}"):
                await asyncio.to_thread(
                    self.custom.patch_namespaced_custom_object_status, GROUP, VERSION, ref.namespace, ref.plural,
                    ref.name, document,
                )  # fmt: skip
        except Gone:
            return


class EventWriter:
    def __init__(self, core: k8s.CoreV1Api) -> None:
        self.core = core

    async def post(self, ref: ObjectRef, type: EventType, reason: str, message: str) -> None:
        await asyncio.to_thread(self.post_blocking, ref, type, reason, message)

    def post_blocking(self, ref: ObjectRef, type: EventType, reason: str, message: str) -> None:
        """An Event on ``ref`` (from a worker thread). Best effort: a failure is logged, never raised."""
        stamp = now_rfc3339()
        event = {
            "metadata": {"generateName": f"{ref.name}.", "namespace": ref.namespace},
            "involvedObject": {"apiVersion": ref.api_version, "kind": ref.kind, "name": ref.name,
                               "namespace": ref.namespace, "uid": ref.uid},
            "reason": reason, "message": message, "type": type, "count": 1,
            "firstTimestamp": stamp, "lastTimestamp": stamp, "source": {"component": COMPONENT},
        }  # fmt: skip
        try:
            self.core.create_namespaced_event(ref.namespace, event)
        except k8s.ApiException as exc:
            logger.warning("Could not post Event %s on %s %s: %s", reason, ref.kind, ref.name, exc.reason)
