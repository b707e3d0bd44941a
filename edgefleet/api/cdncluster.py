"""CdnCluster: an origin, a fleet of caching edges and a consistent-hashing balancer.

Every field's docstring becomes its description in the generated CRD (``edgefleet crds``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from .base import API_VERSION, DNS_LABEL_PATTERN, ApiModel, StatusModel
from .units import Duration, Quantity, parse_bytes, parse_seconds

HTTP_URL_PATTERN = r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[^\s]*)?$"
# No userinfo part: credentials belong in a Secret, never in the CdnCluster spec.
REDIS_URL_PATTERN = r"^rediss?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[0-9]{1,2})?$"
CPU_PATTERN = r"^[0-9]+(\.[0-9]+)?m?$"

ImageFormat = Literal["avif", "webp", "jpeg", "png"]


class SecretKeyRef(ApiModel):
    """A key in a Secret in the CdnCluster's namespace."""

    name: Annotated[str, Field(pattern=DNS_LABEL_PATTERN, max_length=253)]
    """Name of the Secret."""
    key: Annotated[str, Field(min_length=1, max_length=253)]
    """Key within the Secret."""


class S3CredentialsRef(ApiModel):
    """The Secret holding S3 credentials (never the credentials themselves)."""

    name: Annotated[str, Field(pattern=DNS_LABEL_PATTERN, max_length=253)]
    """Name of the Secret."""
    access_key_key: str = "accessKey"
    """Key in the Secret that holds the access key id."""
    secret_key_key: str = "secretKey"
    """Key in the Secret that holds the secret access key."""


class S3Storage(ApiModel):
    """An S3-compatible bucket (MinIO in production)."""

    endpoint: Annotated[str, Field(pattern=HTTP_URL_PATTERN, max_length=2048)]
    """URL of the S3 endpoint, e.g. http://minio.storage:9000."""
    bucket: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    """Bucket that holds the assets."""
    region: str | None = None
    """Region name, when the store needs one."""
    credentials_secret: S3CredentialsRef
    """Secret with the access key id and secret access key."""


class PvcRef(ApiModel):
    """A PersistentVolumeClaim in the CdnCluster's namespace."""

    claim_name: Annotated[str, Field(pattern=DNS_LABEL_PATTERN, max_length=253)]
    """Name of the PersistentVolumeClaim."""


class FilesystemStorage(ApiModel):
    """A directory of files, for development: a PersistentVolumeClaim or a host path."""

    pvc: PvcRef | None = None
    """Mount this PersistentVolumeClaim."""
    host_path: Annotated[str, Field(pattern=r"^/[^\s]*$")] | None = None
    """Mount this directory of the node (kind and minikube only)."""

    cel_rules = (
        {
            "rule": "has(self.pvc) != has(self.hostPath)",
            "message": "set exactly one of pvc or hostPath",
        },
    )

    @model_validator(mode="after")
    def _exactly_one_source(self) -> FilesystemStorage:
        if (self.pvc is None) == (self.host_path is None):
            raise ValueError("filesystem: set exactly one of pvc or hostPath")
        return self


class Storage(ApiModel):
    """Where the origin reads assets from: exactly one of s3 or filesystem."""

    s3: S3Storage | None = None
    """An S3-compatible bucket (MinIO)."""
    filesystem: FilesystemStorage | None = None
    """A directory of files (development)."""

    cel_rules = (
        {
            "rule": "has(self.s3) != has(self.filesystem)",
            "message": "set exactly one storage kind: s3 or filesystem",
        },
    )

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> Storage:
        if (self.s3 is None) == (self.filesystem is None):
            raise ValueError("storage: set exactly one storage kind: s3 or filesystem")
        return self


class ImageVariants(ApiModel):
    """Image variants the origin makes on demand from each master image."""

    widths: Annotated[list[Annotated[int, Field(ge=16, le=8192)]], Field(min_length=1, max_length=32)] = [
        320,
        640,
        1280,
    ]
    """Allowed widths for ?w=; other widths are rounded up to the next allowed one or rejected."""
    formats: Annotated[list[ImageFormat], Field(min_length=1, max_length=4)] = ["avif", "webp", "jpeg"]
    """Formats offered by Accept negotiation, best first."""
    round_widths: Literal["up", "reject"] = "up"
    """What to do with a width that is not allowed: round up to the next allowed width, or reject (400)."""
    max_pixels: Annotated[int, Field(ge=1, le=1_000_000_000)] = 50_000_000
    """Largest master image (width x height) the origin decodes; larger ones are rejected."""


class ResourceList(ApiModel):
    """CPU and memory amounts."""

    cpu: Annotated[str, Field(pattern=CPU_PATTERN)] | None = None
    """CPU, e.g. 250m or 1."""
    memory: Quantity | None = None
    """Memory, e.g. 512Mi."""


class Resources(ApiModel):
    """Compute resources for each pod of a component."""

    requests: ResourceList | None = None
    """Minimum resources the scheduler reserves."""
    limits: ResourceList | None = None
    """Maximum resources the pod may use."""


class Origin(ApiModel):
    """The origin: serves assets from storage and makes image variants."""

    replicas: Annotated[int, Field(ge=1, le=50)] = 1
    """Number of origin pods."""
    storage: Storage
    """Where the assets are stored."""
    default_ttl: Duration = "1h"
    """Cache lifetime for objects without their own TTL metadata."""
    images: ImageVariants = ImageVariants()
    """Image variants made on demand."""
    upload_token_secret: SecretKeyRef | None = None
    """Secret key holding the token for the upload API; generated by the operator when unset."""
    resources: Resources | None = None
    """Compute resources per origin pod."""


class EdgeReplicas(ApiModel):
    """How many edges run; the autoscaler moves ``desired`` between min and max."""

    min: Annotated[int, Field(ge=1, le=500)] = 2
    """Fewest edges."""
    max: Annotated[int, Field(ge=1, le=500)] = 10
    """Most edges."""
    desired: Annotated[int, Field(ge=0, le=500)] | None = None
    """Edges wanted now (the scale subresource); defaults to min. Leave unset in GitOps manifests
    when autoscaling is on, so that the autoscaler owns it."""

    cel_rules = (
        {"rule": "self.min <= self.max", "message": "min must not exceed max", "fieldPath": ".min"},
        {
            "rule": "!has(self.desired) || (self.desired >= self.min && self.desired <= self.max)",
            "message": "desired must lie between min and max",
            "fieldPath": ".desired",
        },
    )

    @model_validator(mode="after")
    def _ordered(self) -> EdgeReplicas:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        if self.desired is not None and not self.min <= self.desired <= self.max:
            raise ValueError(f"desired ({self.desired}) must lie between min and max")
        return self

    @property
    def effective(self) -> int:
        """The replica count to run: ``desired`` when set, else ``min``."""
        return self.min if self.desired is None else self.desired


CachePolicy = Literal["s3fifo-gdsf", "s3fifo-sa", "s3fifo", "lru"]
"""The edge's tier policies (``edgefleet edge --cache-policy``; the edge's tiers.py implements each)."""


class EdgeCache(ApiModel):
    """Cache sizes per edge."""

    memory: Quantity = "256Mi"
    """Memory tier size per edge (hard limit for cached bodies in memory)."""
    disk: Quantity = "1Gi"
    """Disk tier size per edge (0 turns the disk tier off)."""
    grace: Duration = "1h"
    """How long past expiry a stale object may still be served when the origin fails."""
    policy: CachePolicy = "s3fifo-gdsf"
    """Admission and eviction in both tiers: s3fifo-gdsf (S3-FIFO's probation queue in front of a GDSF-ordered
    main queue; an object over 1/1024 of a tier and 128 times the mean object is stored on its second request;
    chosen by measurement, see bench/README.md), s3fifo-sa (the default before), s3fifo, or lru."""

    @property
    def memory_bytes(self) -> int:
        return parse_bytes(self.memory)

    @property
    def disk_bytes(self) -> int:
        return parse_bytes(self.disk)


class Edge(ApiModel):
    """The caching edges."""

    replicas: EdgeReplicas = EdgeReplicas()
    """How many edges run."""
    cache: EdgeCache = EdgeCache()
    """Cache sizes per edge."""
    workers: Annotated[int, Field(ge=1, le=64)] = 1
    """Processes per edge serving its data port (about one per CPU the pod is given). They share the edge's
    disk tier, and each holds memory/workers of the memory tier; the edge is still one fleet member."""
    resources: Resources | None = None
    """Compute resources per edge pod."""


class BalancerService(ApiModel):
    """How the balancer is exposed."""

    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    """Kubernetes Service type."""
    port: Annotated[int, Field(ge=1, le=65535)] = 80
    """Service port."""
    node_port: Annotated[int, Field(ge=30000, le=32767)] | None = None
    """Fixed node port for NodePort and LoadBalancer Services (kind maps it to the host)."""


class Hashing(ApiModel):
    """How requests are mapped to edges."""

    key: Literal["pathAndQuery", "path"] = "pathAndQuery"
    """What identifies a cache key: the path with its normalised query, or the path alone."""
    load_factor: Annotated[float, Field(ge=1.0, le=4.0)] = 1.25
    """Bounded-load factor c: no edge takes more than c times the mean load."""


class Balancer(ApiModel):
    """The consistent-hashing balancer in front of the edges."""

    replicas: Annotated[int, Field(ge=1, le=50)] = 2
    """Number of balancer pods."""
    service: BalancerService = BalancerService()
    """How the balancer is exposed."""
    hashing: Hashing = Hashing()
    """How requests are mapped to edges."""
    resources: Resources | None = None
    """Compute resources per balancer pod."""


class ExternalRedis(ApiModel):
    """A Redis server run by someone else."""

    url: Annotated[str, Field(pattern=REDIS_URL_PATTERN, max_length=2048)]
    """redis:// or rediss:// URL without credentials, e.g. redis://redis.shared:6379/0."""
    password_secret: SecretKeyRef | None = None
    """Secret key holding the Redis password."""


class BusPersistence(ApiModel):
    """Keeping the managed Redis's streams across pod restarts and rescheduling."""

    enabled: bool = False
    """Keep the append-only file on a PersistentVolumeClaim (off: an emptyDir, which survives container restarts
    but not a new pod; after a lost stream every restarted edge drops its whole cache)."""
    size: Quantity = "1Gi"
    """Requested size of the claim."""
    storage_class_name: Annotated[str, Field(pattern=DNS_LABEL_PATTERN, max_length=253)] | None = None
    """StorageClass of the claim (unset: the cluster's default)."""
    fsync: Literal["always", "everysec"] = "always"
    """When Redis flushes the append-only file: after every write (no acknowledged purge is ever lost; purges are
    few), or once a second (at most a second of purges lost in a crash)."""


class PurgeBus(ApiModel):
    """The Redis Streams bus that carries purges to the edges."""

    external: ExternalRedis | None = None
    """Use this Redis instead of a managed one (for high availability, a Sentinel-managed Redis: see
    docs/operations.md)."""
    persistence: BusPersistence = BusPersistence()
    """Durability of the managed Redis (ignored with ``external``)."""
    timeout: Duration = "60s"
    """How long a purge may wait for every edge's acknowledgement before it fails."""


class AutoscalingTargets(ApiModel):
    """What a healthy fleet looks like."""

    hit_ratio: Annotated[float, Field(ge=0.0, le=1.0)] = 0.9
    """Fleet cache hit ratio to keep (0..1)."""
    p95_latency_ms: Annotated[int, Field(ge=1, le=600_000)] = 50
    """95th percentile edge latency to stay under, in milliseconds."""
    origin_requests_per_second: Annotated[float, Field(gt=0)] = 200.0
    """Origin request rate to stay under."""


class Autoscaling(ApiModel):
    """Scaling the edges on hit ratio, latency and origin load."""

    enabled: bool = False
    """Turn the autoscaler on."""
    prometheus_url: Annotated[str, Field(pattern=HTTP_URL_PATTERN, max_length=2048)] | None = None
    """Prometheus to query; when unset the autoscaler scrapes the edges' /metrics directly."""
    interval: Duration = "30s"
    """How often the autoscaler evaluates."""
    targets: AutoscalingTargets = AutoscalingTargets()
    """What a healthy fleet looks like."""
    scale_up_stabilization: Duration = "0s"
    """How long a scale-up signal must persist before acting."""
    scale_down_stabilization: Duration = "5m"
    """How long everything must stay healthy before removing an edge."""
    max_step: Annotated[int, Field(ge=1, le=100)] = 2
    """Most edges added in one decision."""
    tolerance: Annotated[float, Field(ge=0.0, le=1.0)] = 0.1
    """Relative band around each target inside which nothing changes."""

    @property
    def interval_seconds(self) -> float:
        return parse_seconds(self.interval)


class ConsoleService(ApiModel):
    """How the console is exposed."""

    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    """Kubernetes Service type (put an Ingress with TLS in front for people outside the cluster)."""
    port: Annotated[int, Field(ge=1, le=65535)] = 80
    """Service port."""
    node_port: Annotated[int, Field(ge=30000, le=32767)] | None = None
    """Fixed node port for NodePort and LoadBalancer Services."""


class Console(ApiModel):
    """The shop team's web console: assets, purges and the fleet's numbers (``edgefleet console``)."""

    enabled: bool = False
    """Run the console."""
    token_secret: SecretKeyRef | None = None
    """Secret key holding the token people sign in with; when unset the operator generates one in the Secret
    <name>-console-token (key console-token)."""
    service: ConsoleService = ConsoleService()
    """How the console is exposed."""
    prometheus_url: Annotated[str, Field(pattern=HTTP_URL_PATTERN, max_length=2048)] | None = None
    """Prometheus for the console's charts; defaults to autoscaling.prometheusUrl, else the console samples
    the edges' /metrics itself."""
    secure_cookies: bool = False
    """Mark the session cookie Secure: set it when people reach the console over HTTPS."""
    resources: Resources | None = None
    """Compute resources of the console pod."""


class CdnClusterSpec(ApiModel):
    """Desired state of a CDN edge fleet."""

    origin: Origin
    """The origin server."""
    edge: Edge = Edge()
    """The caching edges."""
    balancer: Balancer = Balancer()
    """The consistent-hashing balancer."""
    purge_bus: PurgeBus = PurgeBus()
    """The purge bus (Redis Streams)."""
    autoscaling: Autoscaling = Autoscaling()
    """Edge autoscaling."""
    console: Console = Console()
    """The shop team's web console."""


class ObjectMeta(ApiModel):
    """The parts of Kubernetes object metadata edgefleet reads."""

    model_config = ApiModel.model_config | {"extra": "ignore"}

    name: Annotated[str, Field(pattern=DNS_LABEL_PATTERN, max_length=40)]
    """Object name (at most 40 characters, so derived names stay valid)."""
    namespace: str = "default"
    """Namespace."""
    uid: str | None = None
    """Unique id assigned by the API server."""
    generation: int | None = None
    """Spec generation assigned by the API server."""
    labels: dict[str, str] | None = None
    """Labels."""


# ---- status -------------------------------------------------------------------------------------


class Condition(StatusModel):
    """A condition in the Kubernetes style."""

    type: str
    """Ready, Progressing, Degraded or AutoscalerHealthy."""
    status: Literal["True", "False", "Unknown"]
    """Whether the condition holds."""
    reason: str
    """A CamelCase word for machines."""
    message: str = ""
    """A sentence for people."""
    last_transition_time: str
    """When the status last changed (RFC 3339)."""
    observed_generation: int | None = None
    """The generation this condition was computed for."""


class ComponentStatus(StatusModel):
    """Replica counts of one component."""

    replicas: int = 0
    """Pods that exist."""
    ready_replicas: int = 0
    """Pods that are ready."""
    desired_replicas: int = 0
    """Pods wanted."""


class EdgeStatus(ComponentStatus):
    """Replica counts of the edges, and what the scale subresource needs."""

    selector: str = ""
    """Label selector of the edge pods (for the scale subresource)."""


class FleetMetrics(StatusModel):
    """What the autoscaler last saw."""

    hit_ratio: float | None = None
    """Fleet cache hit ratio (0..1)."""
    p95_latency_ms: float | None = None
    """95th percentile edge latency in milliseconds."""
    requests_per_second: float | None = None
    """Requests per second per edge."""
    origin_requests_per_second: float | None = None
    """Requests per second reaching the origin."""
    evictions_per_second: float | None = None
    """Cache evictions per second across the fleet."""
    cache_fill: float | None = None
    """Fraction of cache capacity in use (0..1)."""


class ScalingDecision(StatusModel):
    """The last autoscaling decision and why it was made."""

    time: str
    """When it was made (RFC 3339)."""
    from_replicas: int
    """Edges before."""
    to_replicas: int
    """Edges after."""
    reason: str
    """Why, in words."""
    metrics: FleetMetrics = FleetMetrics()
    """The metric values it used."""


class CdnClusterStatus(StatusModel):
    """Observed state of a CDN edge fleet."""

    observed_generation: int | None = None
    """The spec generation this status describes."""
    conditions: Annotated[
        list[Condition],
        Field(json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}),
    ] = []
    """Ready, Progressing, Degraded and AutoscalerHealthy."""
    origin: ComponentStatus | None = None
    """Origin replicas."""
    edge: EdgeStatus | None = None
    """Edge replicas."""
    balancer: ComponentStatus | None = None
    """Balancer replicas."""
    edges_ready: str | None = None
    """Ready and desired edges as "ready/desired", for kubectl get."""
    endpoint: str | None = None
    """Where shoppers' traffic goes: the balancer Service address."""
    metrics: FleetMetrics | None = None
    """What the autoscaler last saw."""
    last_scale: ScalingDecision | None = None
    """The last autoscaling decision."""


class CdnCluster(ApiModel):
    """A CDN edge fleet for one shop."""

    model_config = ApiModel.model_config | {"extra": "ignore", "frozen": False}

    api_version: Literal["cdn.edgefleet.io/v1alpha1"] = API_VERSION
    kind: Literal["CdnCluster"] = "CdnCluster"
    metadata: ObjectMeta
    spec: CdnClusterSpec
    status: CdnClusterStatus | None = None
