"""The edgefleet API (group cdn.edgefleet.io, version v1alpha1): the one definition every component imports."""

from .base import API_VERSION, GROUP, VERSION
from .cdncluster import CdnCluster, CdnClusterSpec, CdnClusterStatus
from .purgerequest import PurgePhase, PurgeRequest, PurgeRequestSpec, PurgeRequestStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "CdnCluster",
    "CdnClusterSpec",
    "CdnClusterStatus",
    "PurgePhase",
    "PurgeRequest",
    "PurgeRequestSpec",
    "PurgeRequestStatus",
]
