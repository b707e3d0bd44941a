"""PurgeRequest: remove content from every edge of a CdnCluster, confirmed edge by edge."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from .base import API_VERSION, DNS_LABEL_PATTERN, ApiModel, StatusModel
from .cdncluster import ObjectMeta

# A purge target is an absolute URL path: no scheme, host, spaces or control characters.
PATH_PATTERN = r"^/[^\s?#]*$"
TAG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"

PurgePath = Annotated[str, Field(pattern=PATH_PATTERN, max_length=2048)]
SurrogateKey = Annotated[str, Field(pattern=TAG_PATTERN)]


class PurgeRequestSpec(ApiModel):
    """What to purge, and how. Immutable once created: a purge is an event, not a setting."""

    cluster: Annotated[str, Field(pattern=DNS_LABEL_PATTERN, max_length=40)]
    """Name of the CdnCluster in the same namespace."""
    paths: Annotated[list[PurgePath], Field(max_length=1000)] = []
    """Exact paths to purge (every variant of each path)."""
    prefixes: Annotated[list[PurgePath], Field(max_length=100)] = []
    """Path prefixes to purge."""
    tags: Annotated[list[SurrogateKey], Field(max_length=1000)] = []
    """Surrogate keys (from the origin's Surrogate-Key header) to purge."""
    all: bool = False
    """Purge everything."""
    soft: bool = False
    """Mark stale (revalidate on next request) instead of evicting."""
    refetch: bool = False
    """Warm the purged paths again after the purge (paths only)."""
    ttl_seconds_after_finished: Annotated[int, Field(ge=0, le=31_536_000)] | None = None
    """Delete this PurgeRequest this many seconds after it completes or fails."""

    cel_rules = (
        {
            "rule": "self == oldSelf",
            "message": "a PurgeRequest's spec cannot be changed; create a new one",
        },
        {
            "rule": "(has(self.paths) && size(self.paths) > 0) || (has(self.prefixes) && size(self.prefixes) > 0)"
            " || (has(self.tags) && size(self.tags) > 0) || (has(self.all) && self.all)",
            "message": "name at least one purge target: paths, prefixes, tags or all",
        },
    )

    @model_validator(mode="after")
    def _has_target(self) -> PurgeRequestSpec:
        if not (self.paths or self.prefixes or self.tags or self.all):
            raise ValueError("name at least one purge target: paths, prefixes, tags or all")
        return self


class PurgePhase(StrEnum):
    PENDING = "Pending"
    PROPAGATING = "Propagating"
    COMPLETE = "Complete"
    FAILED = "Failed"

    @property
    def finished(self) -> bool:
        return self in (PurgePhase.COMPLETE, PurgePhase.FAILED)


class EdgeAck(StatusModel):
    """One edge's confirmation."""

    edge: str
    """Edge name (pod name)."""
    acknowledged_at: str
    """When the edge confirmed (RFC 3339)."""


class PurgeRequestStatus(StatusModel):
    """Progress of a purge, edge by edge."""

    phase: PurgePhase = PurgePhase.PENDING
    """Pending, Propagating, Complete or Failed."""
    purge_id: str | None = None
    """The purge's id on the bus (set once, so a restarted operator never publishes twice)."""
    expected_edges: list[str] = []
    """Edges that were members when the purge was issued."""
    acknowledged_edges: list[str] = []
    """Edges that confirmed."""
    pending_edges: list[str] = []
    """Edges that have not confirmed yet."""
    acked: str | None = None
    """Acknowledged and expected edges as "acked/expected", for kubectl get."""
    started_at: str | None = None
    """When the purge was published (RFC 3339)."""
    completed_at: str | None = None
    """When the purge finished (RFC 3339)."""
    duration_ms: int | None = None
    """Milliseconds from publication to the last acknowledgement."""
    message: str | None = None
    """What happened, for people."""
    observed_generation: int | None = None
    """The generation this status describes."""


class PurgeRequest(ApiModel):
    """A purge of content from every edge of a CdnCluster."""

    model_config = ApiModel.model_config | {"extra": "ignore", "frozen": False}

    api_version: Literal["cdn.edgefleet.io/v1alpha1"] = API_VERSION
    kind: Literal["PurgeRequest"] = "PurgeRequest"
    metadata: ObjectMeta
    spec: PurgeRequestSpec
    status: PurgeRequestStatus | None = None
