"""Generate the CustomResourceDefinitions from the API models.

pydantic emits JSON Schema 2020-12; Kubernetes wants a *structural* OpenAPI v3.0 schema: no ``$ref``,
no ``anyOf`` for optionality, ``exclusiveMinimum`` as a boolean, no ``additionalProperties`` beside
``properties``, and object defaults written as ``{}`` so the API server fills nested defaults itself.
This module is the one place that translation happens; ``crds/`` is its output, never hand-edited.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml
from pydantic import BaseModel

from .base import GROUP, VERSION
from .cdncluster import CdnClusterSpec, CdnClusterStatus
from .purgerequest import PurgeRequestSpec, PurgeRequestStatus

JsonSchema = dict[str, Any]

_DROPPED_KEYS = {"title", "$defs"}


class SchemaTranslationError(ValueError):
    """The models use a JSON Schema construct that has no structural OpenAPI equivalent."""


def model_schema(model: type[BaseModel]) -> JsonSchema:
    """The structural OpenAPI v3 schema of a model, with every reference inlined."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    definitions = raw.get("$defs", {})
    return _translate(raw, definitions, path=model.__name__)


def _resolve(node: JsonSchema, definitions: dict[str, JsonSchema]) -> JsonSchema:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        merged = {**copy.deepcopy(definitions[name]), **{k: v for k, v in node.items() if k != "$ref"}}
        return _resolve(merged, definitions)
    if "allOf" in node and len(node["allOf"]) == 1:
        inner = _resolve(node["allOf"][0], definitions)
        return {**inner, **{k: v for k, v in node.items() if k != "allOf"}}
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise SchemaTranslationError(f"anyOf with {len(options)} non-null options is not structural")
        inner = _resolve(options[0], definitions)
        # The outer node carries the field's description and default.
        return {**inner, **{k: v for k, v in node.items() if k != "anyOf"}}
    return node


def _translate(node: JsonSchema, definitions: dict[str, JsonSchema], path: str) -> JsonSchema:
    node = _resolve(node, definitions)
    out: JsonSchema = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "properties":
            out["properties"] = {name: _translate(sub, definitions, f"{path}.{name}") for name, sub in value.items()}
        elif key == "items":
            out["items"] = _translate(value, definitions, f"{path}[]")
        elif key == "additionalProperties":
            if isinstance(value, dict):
                out["additionalProperties"] = _translate(value, definitions, f"{path}{{}}")
            # `false` is pydantic's extra="forbid"; Kubernetes rejects unknown fields by
            # strict field validation instead, and forbids additionalProperties beside properties.
        elif key == "exclusiveMinimum":
            out["minimum"], out["exclusiveMinimum"] = value, True
        elif key == "exclusiveMaximum":
            out["maximum"], out["exclusiveMaximum"] = value, True
        elif key == "const":
            out["enum"] = [value]
        elif key == "default":
            if value is None:
                continue
            # Whole object defaults, not `{}`: the API server checks defaults against CEL rules
            # before nested defaulting, so `{}` would fail rules such as `self.min <= self.max`.
            out["default"] = _without_nulls(value)
        else:
            out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["additionalProperties"] = {"type": "string"}
    if "type" not in out:
        raise SchemaTranslationError(f"{path}: no type")
    if out.get("type") != "object" and "description" not in out and not path.endswith("[]"):
        raise SchemaTranslationError(f"{path}: field has no description")
    return out


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _top_level(description: str, spec: JsonSchema, status: JsonSchema) -> JsonSchema:
    return {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {
                "type": "string",
                "description": "APIVersion defines the versioned schema of this representation of an object.",
            },
            "kind": {
                "type": "string",
                "description": "Kind is a string value representing the REST resource this object represents.",
            },
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }


def _crd(
    *,
    kind: str,
    plural: str,
    short: str,
    description: str,
    schema: JsonSchema,
    columns: list[dict[str, Any]],
    subresources: dict[str, Any],
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "edgefleet", "app.kubernetes.io/part-of": "edgefleet"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
                "categories": ["edgefleet"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": subresources,
                    "additionalPrinterColumns": columns,
                }
            ],
        },
    }


def cdncluster_crd() -> dict[str, Any]:
    spec = model_schema(CdnClusterSpec)
    status = model_schema(CdnClusterStatus)
    return _crd(
        kind="CdnCluster",
        plural="cdnclusters",
        short="cdn",
        description="A CDN edge fleet: an origin, caching edges and a consistent-hashing balancer.",
        schema=_top_level("A CDN edge fleet for one shop.", spec, status),
        columns=[
            {
                "name": "Ready",
                "type": "string",
                "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
                "description": "Whether the fleet serves traffic as specified.",
            },
            {
                "name": "Edges",
                "type": "string",
                "jsonPath": ".status.edgesReady",
                "description": "Ready and desired edges.",
            },
            {
                "name": "Hit ratio",
                "type": "number",
                "jsonPath": ".status.metrics.hitRatio",
                "description": "Fleet cache hit ratio.",
            },
            {
                "name": "P95 ms",
                "type": "number",
                "jsonPath": ".status.metrics.p95LatencyMs",
                "description": "95th percentile edge latency in milliseconds.",
            },
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
        subresources={
            "status": {},
            "scale": {
                "specReplicasPath": ".spec.edge.replicas.desired",
                "statusReplicasPath": ".status.edge.replicas",
                "labelSelectorPath": ".status.edge.selector",
            },
        },
    )


def purgerequest_crd() -> dict[str, Any]:
    spec = model_schema(PurgeRequestSpec)
    status = model_schema(PurgeRequestStatus)
    return _crd(
        kind="PurgeRequest",
        plural="purgerequests",
        short="purge",
        description="A purge of content from every edge of a CdnCluster, confirmed edge by edge.",
        schema=_top_level("A purge of content from every edge of a CdnCluster.", spec, status),
        columns=[
            {"name": "Cluster", "type": "string", "jsonPath": ".spec.cluster"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {
                "name": "Acked",
                "type": "string",
                "jsonPath": ".status.acked",
                "description": "Edges that confirmed, of those expected.",
            },
            {
                "name": "Duration ms",
                "type": "integer",
                "jsonPath": ".status.durationMs",
                "description": "Milliseconds from publication to the last acknowledgement.",
            },
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
        subresources={"status": {}},
    )


CRD_FILES = {
    "cdn.edgefleet.io_cdnclusters.yaml": cdncluster_crd,
    "cdn.edgefleet.io_purgerequests.yaml": purgerequest_crd,
}


def dump(document: dict[str, Any]) -> str:
    """Deterministic YAML: same models, byte-identical output."""
    return yaml.safe_dump(document, sort_keys=False, width=100, allow_unicode=True)


def render_all() -> str:
    """Both CRDs as one multi-document YAML stream (what ``edgefleet crds`` prints)."""
    return "---\n".join(dump(build()) for build in CRD_FILES.values())
