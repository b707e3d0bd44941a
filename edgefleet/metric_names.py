"""Prometheus metric names and label names: the one list the components export, the autoscaler
queries, and the dashboards and alerts use. Change a name here and every user of it follows.
"""

from __future__ import annotations

from typing import Final

# ---- edge (edgefleet edge) ----------------------------------------------------------------------
EDGE_REQUESTS: Final = "edgefleet_edge_requests_total"
"""Counter; labels: cache_status (hit|miss|stale|expired|bypass|revalidated), code."""
EDGE_REQUEST_DURATION: Final = "edgefleet_edge_request_duration_seconds"
"""Histogram of client request latency; labels: cache_status."""
EDGE_ORIGIN_REQUESTS: Final = "edgefleet_edge_origin_requests_total"
"""Counter of requests the edge sent to the origin; labels: code (or 'error')."""
EDGE_ORIGIN_DURATION: Final = "edgefleet_edge_origin_request_duration_seconds"
"""Histogram of origin fetch latency (to response head)."""
EDGE_BYTES_SERVED: Final = "edgefleet_edge_bytes_served_total"
"""Counter of response body bytes sent to clients."""
EDGE_CACHE_BYTES: Final = "edgefleet_edge_cache_bytes"
"""Gauge of bytes stored; labels: tier (memory|disk)."""
EDGE_CACHE_CAPACITY: Final = "edgefleet_edge_cache_capacity_bytes"
"""Gauge of configured bytes; labels: tier."""
EDGE_CACHE_OBJECTS: Final = "edgefleet_edge_cache_objects"
"""Gauge of objects stored; labels: tier."""
EDGE_EVICTIONS: Final = "edgefleet_edge_evictions_total"
"""Counter of objects evicted for space; labels: tier."""
EDGE_ADMISSIONS_DECLINED: Final = "edgefleet_edge_admissions_declined_total"
"""Counter of storable objects new to the cache that the tier's admission did not store (with the default
size-aware policy, a large object's first request); labels: tier."""
EDGE_CORRUPT_BODIES: Final = "edgefleet_edge_corrupt_bodies_total"
"""Counter of stored bodies found truncated or changed when read (length or checksum), evicted and refetched."""
EDGE_DISK_WRITE_ERRORS: Final = "edgefleet_edge_disk_write_errors_total"
"""Counter of disk tier writes that failed (ENOSPC, EIO, ...); the object was served unstored."""
EDGE_PURGES_APPLIED: Final = "edgefleet_edge_purges_applied_total"
"""Counter of purges applied from the bus; labels: kind (path|prefix|tag|all)."""
EDGE_PURGE_LAG: Final = "edgefleet_edge_purge_lag_seconds"
"""Gauge: seconds between a purge's issue time and when this edge applied it (last purge)."""
BUS_DEAD_LETTERS: Final = "edgefleet_bus_dead_letters_total"
"""Counter of bus entries this consumer could not parse or validate, recorded in the dead-letter stream
and skipped; labels: stream (purges|warm)."""
EDGE_WORKERS_SERVING: Final = "edgefleet_edge_workers_serving"
"""Gauge (``--workers`` > 1): worker processes serving the data port."""
EDGE_WORKER_RESTARTS: Final = "edgefleet_edge_worker_restarts_total"
"""Counter (``--workers`` > 1): worker processes the supervisor restarted after they died."""
EDGE_WORKER_REQUESTS: Final = "edgefleet_edge_worker_requests_total"
"""Counter (``--workers`` > 1) of client requests per worker (since it started); labels: worker."""
EDGE_WORKER_SHARED_DISK_HITS: Final = "edgefleet_edge_worker_shared_disk_hits_total"
"""Counter (``--workers`` > 1) of objects a worker read from the shared disk tier (since it started); labels: worker."""

# ---- origin (edgefleet origin) ------------------------------------------------------------------
ORIGIN_REQUESTS: Final = "edgefleet_origin_requests_total"
"""Counter; labels: method, code."""
ORIGIN_REQUEST_DURATION: Final = "edgefleet_origin_request_duration_seconds"
"""Histogram of request latency; labels: method."""
ORIGIN_BYTES_SERVED: Final = "edgefleet_origin_bytes_served_total"
"""Counter of body bytes sent."""
ORIGIN_VARIANT_GENERATIONS: Final = "edgefleet_origin_variant_generations_total"
"""Counter of image variants generated; labels: format."""
ORIGIN_VARIANT_DURATION: Final = "edgefleet_origin_variant_generation_seconds"
"""Histogram of variant generation time; labels: format."""
ORIGIN_OUTBOX_PENDING: Final = "edgefleet_origin_outbox_pending"
"""Gauge of object changes stored but whose purge/warm events are not yet published (the bus was down)."""
ORIGIN_OUTBOX_PUBLISHED: Final = "edgefleet_origin_outbox_published_total"
"""Counter of object changes whose events reached the bus (every change passes through the outbox)."""
ORIGIN_STORAGE_ERRORS: Final = "edgefleet_origin_storage_errors_total"
"""Counter of storage backend failures; labels: operation."""

# ---- balancer (edgefleet balancer) --------------------------------------------------------------
# Traffic metrics come from HAProxy's built-in exporter, under HAProxy's own names (haproxy_frontend_*,
# haproxy_backend_* for proxy="edges", haproxy_server_* per slot; GET /members maps slots to edges).
# tests/balancer checks every haproxy_* name the chart uses against a real HAProxy's exporter.
# The agent's own:
BALANCER_MEMBERS: Final = "edgefleet_balancer_members"
"""Gauge of edges the balancer was told about (in service or not)."""
BALANCER_MEMBERSHIP_CHANGES: Final = "edgefleet_balancer_membership_changes_total"
"""Counter of membership changes applied through HAProxy's runtime API."""
BALANCER_HAPROXY_RESTARTS: Final = "edgefleet_balancer_haproxy_restarts_total"
"""Counter of HAProxy exits the agent recovered from."""
BALANCER_WARM_REQUESTS: Final = "edgefleet_balancer_warm_requests_total"
"""Counter of warm-event paths sent through HAProxy; labels: outcome (ok|error)."""
BALANCER_PANIC_ROUTING: Final = "edgefleet_balancer_panic_routing"
"""Gauge, 1 while no edge is ready and the balancer routes to the live not-ready ones (``kube_membership``)."""

# ---- operator (edgefleet operator) --------------------------------------------------------------
OPERATOR_RECONCILES: Final = "edgefleet_operator_reconciles_total"
"""Counter; labels: result (ok|error)."""
OPERATOR_SCALING_DECISIONS: Final = "edgefleet_operator_scaling_decisions_total"
"""Counter; labels: direction (up|down|hold)."""
OPERATOR_PURGES: Final = "edgefleet_operator_purges_total"
"""Counter of finished purges; labels: phase (Complete|Failed)."""
OPERATOR_PURGE_DURATION: Final = "edgefleet_operator_purge_duration_seconds"
"""Histogram of purge propagation time (publication to last acknowledgement)."""
OPERATOR_AUTOSCALER_HEALTHY: Final = "edgefleet_operator_autoscaler_healthy"
"""Gauge, 1 when the autoscaler last had the metrics it needs; labels: namespace, cluster."""

# Histogram buckets for request latency: sub-millisecond hits to multi-second misses.
LATENCY_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
