"""From a CdnCluster spec to the decision function's inputs (shared by the operator and ``edgefleet up``)."""

from __future__ import annotations

from edgefleet.api import CdnClusterSpec
from edgefleet.api.units import parse_seconds

from .decision import ScalingSpec, Targets


def scaling_spec(spec: CdnClusterSpec) -> ScalingSpec:
    autoscaling = spec.autoscaling
    return ScalingSpec(
        min_replicas=spec.edge.replicas.min,
        max_replicas=spec.edge.replicas.max,
        targets=Targets(
            hit_ratio=autoscaling.targets.hit_ratio,
            p95_latency_ms=float(autoscaling.targets.p95_latency_ms),
            origin_requests_per_second=autoscaling.targets.origin_requests_per_second,
        ),
        scale_up_window=parse_seconds(autoscaling.scale_up_stabilization),
        scale_down_window=parse_seconds(autoscaling.scale_down_stabilization),
        max_step=autoscaling.max_step,
        tolerance=autoscaling.tolerance,
        min_requests=autoscaling.min_requests,
    )
