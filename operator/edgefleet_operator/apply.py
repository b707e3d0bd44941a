"""The only place the operator writes to the API server: server-side apply with one field manager.

Applying the same manifest twice is a no-op on the server (no resourceVersion bump), so GitOps tools
and ``kubectl get -w`` see nothing when nothing changed; objects edited by hand are put back because
``force`` takes the fields back from whoever changed them.
"""

from __future__ import annotations

import base64
import secrets
import threading
from dataclasses import dataclass
from typing import Any, Literal

from kubernetes import dynamic
from kubernetes.client import ApiClient
from kubernetes.dynamic.exceptions import ApiException, NotFoundError, ResourceNotFoundError

FIELD_MANAGER = "edgefleet-operator"

Action = Literal["created", "updated", "unchanged"]


class ApplyError(RuntimeError):
    """The API server refused an object; the message names it and says why."""

    def __init__(self, kind: str, name: str, reason: str, *, retryable: bool) -> None:
        super().__init__(f"{kind} {name}: {reason}")
        self.retryable = retryable


@dataclass(frozen=True)
class Applied:
    kind: str
    name: str
    action: Action


class Applier:
    def __init__(self, api_client: ApiClient) -> None:
        self.client = dynamic.DynamicClient(api_client)
        # The discovery cache is rewritten in place when a kind is not found (no ServiceMonitor CRD) and is not
        # thread-safe; kopf's sync handlers and owned-object reconciles run in different threads.
        self._discovery = threading.Lock()

    def _resource(self, api_version: str, kind: str) -> Any:
        with self._discovery:
            return self.client.resources.get(api_version=api_version, kind=kind)

    def has_kind(self, api_version: str, kind: str) -> bool:
        try:
            self._resource(api_version, kind)
        except ResourceNotFoundError:
            return False
        return True

    def apply(self, manifest: dict[str, Any]) -> Applied:
        kind, meta = manifest["kind"], manifest["metadata"]
        name, namespace = meta["name"], meta.get("namespace")
        try:
            resource = self._resource(manifest["apiVersion"], kind)
            try:
                before = resource.get(name=name, namespace=namespace).metadata.resourceVersion
            except NotFoundError:
                before = None
            after = resource.server_side_apply(
                body=manifest, name=name, namespace=namespace, field_manager=FIELD_MANAGER, force_conflicts=True
            ).metadata.resourceVersion
        except ApiException as exc:
            retryable = exc.status in (409, 429, 500, 503, 504)
            raise ApplyError(kind, name, f"{exc.status} {exc.reason}: {_message(exc)}", retryable=retryable) from exc
        if before is None:
            return Applied(kind, name, "created")
        return Applied(kind, name, "unchanged" if before == after else "updated")

    def get(self, api_version: str, kind: str, name: str, namespace: str) -> Any | None:
        try:
            return self._resource(api_version, kind).get(name=name, namespace=namespace)
        except NotFoundError:
            return None

    def list(self, api_version: str, kind: str, namespace: str, label_selector: str) -> list[Any]:
        return list(self._resource(api_version, kind).get(namespace=namespace, label_selector=label_selector).items)

    def ensure_secret(self, name: str, namespace: str, keys: tuple[str, ...], owner: dict[str, Any]) -> bool:
        """Create the Secret with random values for ``keys`` unless it exists. True if created.

        Created once and never re-rendered: rendering random tokens would change on every reconcile.
        """
        if self.get("v1", "Secret", name, namespace) is not None:
            return False
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace, "ownerReferences": [owner],
                         "labels": {"app.kubernetes.io/managed-by": FIELD_MANAGER}},
            "type": "Opaque",
            "data": {key: base64.b64encode(secrets.token_urlsafe(32).encode()).decode() for key in keys},
        }  # fmt: skip
        try:
            self._resource("v1", "Secret").create(body=body, namespace=namespace)
        except ApiException as exc:
            if exc.status == 409:
                return False  # created meanwhile by another reconcile: fine
            raise ApplyError("Secret", name, f"{exc.status} {exc.reason}", retryable=True) from exc
        return True


def _message(exc: ApiException) -> str:
    import json

    try:
        return str(json.loads(exc.body).get("message", exc.body))
    except (TypeError, ValueError):
        return str(exc.body)[:300]
