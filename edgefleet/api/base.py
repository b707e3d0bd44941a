"""Common base for the API models: camelCase on the wire, unknown fields rejected."""

from __future__ import annotations

from typing import Any, ClassVar, Final

from pydantic import BaseModel, ConfigDict, GetJsonSchemaHandler
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

GROUP = "cdn.edgefleet.io"
VERSION = "v1alpha1"
API_VERSION: Final = "cdn.edgefleet.io/v1alpha1"  # f"{GROUP}/{VERSION}", spelled out for Literal types

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class ApiModel(BaseModel):
    """A part of a CdnCluster or PurgeRequest.

    ``cel_rules`` are the cross-field rules: they are written once here as CEL, go into the CRD as
    ``x-kubernetes-validations`` (so the API server enforces them), and each model mirrors them in a
    pydantic validator (so ``edgefleet up`` and ``edgefleet render`` enforce them without a cluster).
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
    )

    cel_rules: ClassVar[tuple[dict[str, str], ...]] = ()

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        json_schema = handler(core_schema)
        if cls.cel_rules:
            target = handler.resolve_ref_schema(json_schema)
            target["x-kubernetes-validations"] = [dict(rule) for rule in cls.cel_rules]
        return json_schema

    def to_wire(self) -> dict[str, Any]:
        """The camelCase dictionary the API server stores (unset optional fields left out)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class StatusModel(BaseModel):
    """A part of a status: camelCase, mutable, and tolerant of fields written by newer versions."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        use_attribute_docstrings=True,
    )

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")
