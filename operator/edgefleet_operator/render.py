"""``render(cluster) -> manifests``: everything a CdnCluster becomes, as plain dictionaries.

Pure and deterministic: the same CdnCluster renders byte-identical YAML every time, so GitOps diffs
stay quiet and ``edgefleet render`` shows reviewers exactly what the operator will create. Secrets
are never rendered with values: tokens live in a Secret the applier creates once (``tokens_secret``).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from edgefleet.api import CdnCluster
from edgefleet.api.cdncluster import Resources
from edgefleet.api.units import parse_bytes
from edgefleet.components import (
    BalancerPlacement,
    EdgePlacement,
    OriginPlacement,
    balancer_args,
    edge_args,
    origin_args,
    s3_storage_url,
)

Manifest = dict[str, Any]

MANAGED_BY = "edgefleet-operator"
CONFIG_HASH = "cdn.edgefleet.io/config-hash"
EDGE_PORT, ADMIN_PORT, ORIGIN_PORT, REDIS_PORT = 8080, 9090, 8081, 6379
CONSOLE_PORT = 8082
RUN_AS = 10001


@dataclass(frozen=True)
class RenderOptions:
    image: str = "ghcr.io/edgefleet/edgefleet:0.1.0"
    # The managed bus runs Debian's redis-server from the edgefleet image itself, so a fleet needs one
    # image and nothing from Docker Hub (air-gapped clusters, kind with loaded images). Another image
    # (e.g. redis:7.2-alpine) runs with its own entrypoint as its own user (999 in the official one).
    redis_image: str | None = None
    service_monitor: bool = False


# ---- names and labels -------------------------------------------------------------------------------


def name_of(cluster: CdnCluster, component: str | None = None) -> str:
    return cluster.metadata.name if component is None else f"{cluster.metadata.name}-{component}"


def tokens_secret(cluster: CdnCluster) -> str:
    return name_of(cluster, "tokens")


def console_token_secret(cluster: CdnCluster) -> str:
    """The Secret the operator generates for the console token when spec.console.tokenSecret is unset."""
    return name_of(cluster, "console-token")


def bus_cluster(cluster: CdnCluster) -> str:
    """The cluster's name on the purge bus: namespace-qualified, like the local runtime's."""
    return f"{cluster.metadata.namespace}.{cluster.metadata.name}"


def labels(cluster: CdnCluster, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "edgefleet",
        "app.kubernetes.io/instance": cluster.metadata.name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/part-of": "edgefleet",
    }


def selector(cluster: CdnCluster, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/instance": cluster.metadata.name, "app.kubernetes.io/component": component}


def edge_selector_string(cluster: CdnCluster) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector(cluster, "edge").items()))


def bus_url(cluster: CdnCluster) -> str:
    external = cluster.spec.purge_bus.external
    if external is not None:
        return external.url
    return f"redis://{name_of(cluster, 'redis')}.{cluster.metadata.namespace}.svc:{REDIS_PORT}/0"


def _metadata(cluster: CdnCluster, name: str, component: str, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": cluster.metadata.namespace,
        "labels": labels(cluster, component),
    }
    if cluster.metadata.uid:
        meta["ownerReferences"] = [
            {
                "apiVersion": cluster.api_version,
                "kind": "CdnCluster",
                "name": cluster.metadata.name,
                "uid": cluster.metadata.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    meta.update(extra)
    return meta


# ---- pod building blocks ----------------------------------------------------------------------------

POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": RUN_AS,
    "runAsGroup": RUN_AS,
    "fsGroup": RUN_AS,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


def _resources(spec: Resources | None, default_cpu: str, default_memory: str) -> dict[str, Any]:
    out: dict[str, Any] = {"requests": {"cpu": default_cpu, "memory": default_memory}}
    if spec is not None:
        for part in ("requests", "limits"):
            values = getattr(spec, part)
            if values is not None:
                out[part] = {k: v for k, v in values.to_wire().items()}
    return out


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def _deployment(
    cluster: CdnCluster,
    component: str,
    replicas: int | None,
    container: dict[str, Any],
    config: dict[str, Any],
    *,
    volumes: list[dict[str, Any]],
    service_account: str | None = None,
    extra_spec: dict[str, Any] | None = None,
    metrics_port: int | None = None,
) -> Manifest:
    annotations = {CONFIG_HASH: _config_hash(config)}
    if metrics_port is not None:
        annotations.update({"prometheus.io/scrape": "true", "prometheus.io/port": str(metrics_port),
                            "prometheus.io/path": "/metrics"})  # fmt: skip
    pod_spec: dict[str, Any] = {
        "securityContext": POD_SECURITY,
        "automountServiceAccountToken": service_account is not None,
        "containers": [{**container, "securityContext": CONTAINER_SECURITY}],
        "volumes": volumes,
        **(extra_spec or {}),
    }
    if service_account is not None:
        pod_spec["serviceAccountName"] = service_account
    spec: dict[str, Any] = {
        "selector": {"matchLabels": selector(cluster, component)},
        "template": {
            "metadata": {"labels": labels(cluster, component), "annotations": annotations},
            "spec": pod_spec,
        },
    }
    if replicas is not None:
        spec = {"replicas": replicas, **spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(cluster, name_of(cluster, component), component),
        "spec": spec,
    }


def _service(cluster: CdnCluster, component: str, ports: list[tuple[str, int, int]], **spec: Any) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(cluster, spec.pop("name", name_of(cluster, component)), component),
        "spec": {
            "selector": selector(cluster, component),
            "ports": [{"name": n, "port": p, "targetPort": t, "protocol": "TCP"} for n, p, t in ports],
            **spec,
        },
    }


def _probe(path: str, port: int, period: int = 5) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": port}, "periodSeconds": period, "timeoutSeconds": 2}


def _token_env(cluster: CdnCluster) -> list[dict[str, Any]]:
    return [_secret_env("EDGEFLEET_ADMIN_TOKEN", tokens_secret(cluster), "admin-token")]


def _bus_env(cluster: CdnCluster) -> list[dict[str, Any]]:
    external = cluster.spec.purge_bus.external
    if external is not None and external.password_secret is not None:
        return [_secret_env("EDGEFLEET_REDIS_PASSWORD", external.password_secret.name, external.password_secret.key)]
    return []


# ---- components ---------------------------------------------------------------------------------------


def _origin(cluster: CdnCluster, options: RenderOptions) -> list[Manifest]:
    origin = cluster.spec.origin
    env: list[dict[str, Any]] = []
    volumes: list[dict[str, Any]] = [
        {"name": "tmp", "emptyDir": {}},
        {"name": "variants", "emptyDir": {"sizeLimit": "2Gi"}},
    ]
    mounts = [{"name": "tmp", "mountPath": "/tmp"}, {"name": "variants", "mountPath": "/var/cache/edgefleet"}]
    if origin.storage.s3 is not None:
        s3 = origin.storage.s3
        storage = s3_storage_url(s3)
        secret = s3.credentials_secret
        env += [
            _secret_env("EDGEFLEET_S3_ACCESS_KEY", secret.name, secret.access_key_key),
            _secret_env("EDGEFLEET_S3_SECRET_KEY", secret.name, secret.secret_key_key),
        ]
    else:
        filesystem = origin.storage.filesystem
        assert filesystem is not None
        storage = "file:///data"
        source = (
            {"persistentVolumeClaim": {"claimName": filesystem.pvc.claim_name}}
            if filesystem.pvc is not None
            else {"hostPath": {"path": filesystem.host_path, "type": "Directory"}}
        )
        volumes.append({"name": "assets", **source})
        mounts.append({"name": "assets", "mountPath": "/data"})
    upload = origin.upload_token_secret
    env.append(
        _secret_env("EDGEFLEET_UPLOAD_TOKEN", upload.name, upload.key)
        if upload is not None
        else _secret_env("EDGEFLEET_UPLOAD_TOKEN", tokens_secret(cluster), "upload-token")
    )
    env += _bus_env(cluster)
    args = origin_args(
        cluster.spec,
        OriginPlacement(
            listen=f"0.0.0.0:{ORIGIN_PORT}", storage=storage, redis=bus_url(cluster), cluster=bus_cluster(cluster),
            variant_cache_dir="/var/cache/edgefleet", log_format="json",
        ),
    )  # fmt: skip
    container = {
        "name": "origin",
        "image": options.image,
        # Every edgefleet image carries the whole CLI; the subcommand is the first argument.
        "command": ["edgefleet"],
        "args": args,
        "env": env,
        "ports": [{"name": "http", "containerPort": ORIGIN_PORT, "protocol": "TCP"}],
        "readinessProbe": _probe("/readyz", ORIGIN_PORT),
        "livenessProbe": _probe("/healthz", ORIGIN_PORT, 10),
        "resources": _resources(origin.resources, "250m", "256Mi"),
        "volumeMounts": mounts,
    }
    return [
        _deployment(
            cluster,
            "origin",
            origin.replicas,
            container,
            {"args": args, "env": env},
            volumes=volumes,
            metrics_port=ORIGIN_PORT,
        ),
        _service(cluster, "origin", [("http", ORIGIN_PORT, ORIGIN_PORT)]),
    ]


def _edges(cluster: CdnCluster, options: RenderOptions) -> list[Manifest]:
    edge = cluster.spec.edge
    memory, disk = parse_bytes(edge.cache.memory), parse_bytes(edge.cache.disk)
    args = edge_args(
        cluster.spec,
        EdgePlacement(
            listen=f"0.0.0.0:{EDGE_PORT}", admin_listen=f"0.0.0.0:{ADMIN_PORT}",
            origin=f"http://{name_of(cluster, 'origin')}:{ORIGIN_PORT}", cache_dir="/var/cache/edgefleet",
            redis=bus_url(cluster), cluster=bus_cluster(cluster), name="$(POD_NAME)", log_format="json",
        ),
    )  # fmt: skip
    env = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}, *_token_env(cluster),
           *_bus_env(cluster)]  # fmt: skip
    # The disk tier is an emptyDir sized to the cache plus headroom: it survives container restarts.
    volumes = [
        {"name": "tmp", "emptyDir": {}},
        {"name": "cache", "emptyDir": {"sizeLimit": f"{max(disk, 64 * 2**20) * 5 // 4 // 2**20}Mi"}},
    ]
    container = {
        "name": "edge",
        "image": options.image,
        # Every edgefleet image carries the whole CLI; the subcommand is the first argument.
        "command": ["edgefleet"],
        "args": args,
        "env": env,
        "ports": [
            {"name": "http", "containerPort": EDGE_PORT, "protocol": "TCP"},
            {"name": "admin", "containerPort": ADMIN_PORT, "protocol": "TCP"},
        ],
        # Ready only after catching up with the purge bus, so no edge serves content purged while it started.
        "readinessProbe": _probe("/readyz", ADMIN_PORT, 2),
        "livenessProbe": _probe("/healthz", ADMIN_PORT, 10),
        "resources": _resources(edge.resources, "250m", f"{(memory * 3 // 2) // 2**20 + 64}Mi"),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, {"name": "cache", "mountPath": "/var/cache/edgefleet"}],
    }
    spread = {
        "topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
             "labelSelector": {"matchLabels": selector(cluster, "edge")}},
            {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway",
             "labelSelector": {"matchLabels": selector(cluster, "edge")}},
        ],
        "terminationGracePeriodSeconds": 30,
    }  # fmt: skip
    deployment = _deployment(cluster, "edge", edge.replicas.effective, container, {"args": args, "env": env},
                             volumes=volumes, extra_spec=spread, metrics_port=ADMIN_PORT)  # fmt: skip
    deployment["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}}
    return [
        deployment,
        _service(
            cluster,
            "edge",
            [("http", EDGE_PORT, EDGE_PORT), ("admin", ADMIN_PORT, ADMIN_PORT)],
            clusterIP="None",
            publishNotReadyAddresses=False,
        ),
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": _metadata(cluster, name_of(cluster, "edge"), "edge"),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(cluster, "edge")}},
        },
    ]


HAPROXY_BINARY = "/usr/sbin/haproxy"
"""Where Debian's haproxy package puts HAProxy in the image; the balancer runs it as its child."""


def haproxy_threads(resources: Resources | None) -> int | None:
    """HAProxy starts a thread per CPU of the *node* unless told: one per whole CPU of the limit instead."""
    cpu = resources.limits.cpu if resources is not None and resources.limits is not None else None
    if cpu is None:
        return None
    cores = float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
    return max(1, math.ceil(cores))


def _balancer(cluster: CdnCluster, options: RenderOptions) -> list[Manifest]:
    spec = cluster.spec.balancer
    account = name_of(cluster, "balancer")
    threads = haproxy_threads(spec.resources)
    args = balancer_args(
        cluster.spec,
        BalancerPlacement(
            listen=f"0.0.0.0:{EDGE_PORT}", admin_listen=f"0.0.0.0:{ADMIN_PORT}", redis=bus_url(cluster),
            cluster=bus_cluster(cluster), name="$(POD_NAME)", log_format="json",
            membership=(f"--kubernetes-service={cluster.metadata.namespace}/{name_of(cluster, 'edge')}",
                        f"--edge-port={EDGE_PORT}", f"--edge-admin-port={ADMIN_PORT}"),
            haproxy=(f"--haproxy={HAPROXY_BINARY}", *([f"--haproxy-threads={threads}"] if threads else [])),
        ),
    )  # fmt: skip
    env = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}, *_token_env(cluster),
           *_bus_env(cluster)]  # fmt: skip
    container = {
        "name": "balancer",
        "image": options.image,
        # Every edgefleet image carries the whole CLI; the subcommand is the first argument.
        "command": ["edgefleet"],
        "args": args,
        "env": env,
        "ports": [
            {"name": "http", "containerPort": EDGE_PORT, "protocol": "TCP"},
            {"name": "admin", "containerPort": ADMIN_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": _probe("/healthz", ADMIN_PORT, 2),
        "livenessProbe": _probe("/healthz", ADMIN_PORT, 10),
        "resources": _resources(spec.resources, "250m", "128Mi"),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    service_spec: dict[str, Any] = {"type": spec.service.type}
    ports = [{"name": "http", "port": spec.service.port, "targetPort": EDGE_PORT, "protocol": "TCP"}]
    if spec.service.node_port is not None and spec.service.type != "ClusterIP":
        ports[0]["nodePort"] = spec.service.node_port
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _metadata(cluster, account, "balancer"),
            "automountServiceAccountToken": True,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _metadata(cluster, account, "balancer"),
            "rules": [
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]}
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _metadata(cluster, account, "balancer"),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": cluster.metadata.namespace}],
        },
        _deployment(
            cluster,
            "balancer",
            spec.replicas,
            container,
            {"args": args, "env": env},
            volumes=[{"name": "tmp", "emptyDir": {}}],
            service_account=account,
            metrics_port=ADMIN_PORT,
        ),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _metadata(cluster, name_of(cluster), "balancer"),
            "spec": {"selector": selector(cluster, "balancer"), "ports": ports, **service_spec},
        },
    ]


def _redis(cluster: CdnCluster, options: RenderOptions) -> list[Manifest]:
    persistence = cluster.spec.purge_bus.persistence
    # The append-only file fsynced as asked: with "always" no purge reported published is lost in a crash.
    args = ["--appendonly", "yes", "--appendfsync", persistence.fsync, "--dir", "/data", "--protected-mode", "no",
            "--save", ""]  # fmt: skip
    container: dict[str, Any] = {"name": "redis", "image": options.redis_image or options.image}
    if options.redis_image is None:
        container["command"] = ["/usr/bin/redis-server"]
    container |= {
        "args": args,
        "ports": [{"name": "redis", "containerPort": REDIS_PORT, "protocol": "TCP"}],
        "readinessProbe": {"tcpSocket": {"port": REDIS_PORT}, "periodSeconds": 5},
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    claim_name = name_of(cluster, "redis-data")
    data: dict[str, Any] = (
        {"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}
        if persistence.enabled
        else {"name": "data", "emptyDir": {}}
    )
    deployment = _deployment(cluster, "redis", 1, container, {"args": container["args"]}, volumes=[data])
    if options.redis_image is not None:  # the official image's redis user is 999; run as it rather than root
        pod = deployment["spec"]["template"]["spec"]
        pod["securityContext"] = {**POD_SECURITY, "runAsUser": 999, "runAsGroup": 999, "fsGroup": 999}
    deployment["spec"]["strategy"] = {"type": "Recreate"}  # one writer of the append-only file at a time
    manifests = [deployment, _service(cluster, "redis", [("redis", REDIS_PORT, REDIS_PORT)])]
    if persistence.enabled:
        claim_spec: dict[str, Any] = {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": persistence.size}},
        }
        if persistence.storage_class_name is not None:
            claim_spec["storageClassName"] = persistence.storage_class_name
        manifests.append({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": _metadata(cluster, claim_name, "redis"),
            "spec": claim_spec,
        })  # fmt: skip
    return manifests


def _console(cluster: CdnCluster, options: RenderOptions) -> list[Manifest]:
    """The web console: one pod (sessions live in its memory), its own Service, and a ServiceAccount without
    any API permissions or token: it finds the edges through the headless edge Service's DNS records."""
    spec, namespace = cluster.spec.console, cluster.metadata.namespace
    account = name_of(cluster, "console")
    images = cluster.spec.origin.images
    prometheus = spec.prometheus_url or cluster.spec.autoscaling.prometheus_url
    balancer_port = cluster.spec.balancer.service.port
    args = [
        "console",
        f"--listen=0.0.0.0:{CONSOLE_PORT}",
        f"--origin=http://{name_of(cluster, 'origin')}:{ORIGIN_PORT}",
        f"--fleet=http://{name_of(cluster)}" + (f":{balancer_port}" if balancer_port != 80 else ""),
        f"--redis={bus_url(cluster)}",
        f"--cluster={bus_cluster(cluster)}",
        f"--edges-dns={name_of(cluster, 'edge')}.{namespace}.svc",
        f"--edge-admin-port={ADMIN_PORT}",
        f"--widths={','.join(str(w) for w in images.widths)}",
        f"--formats={','.join(images.formats)}",
        "--log-format=json",
    ]
    if prometheus:
        args.append(f"--prometheus-url={prometheus}")
    if spec.secure_cookies:
        args.append("--secure-cookies")
    token = spec.token_secret
    upload = cluster.spec.origin.upload_token_secret
    env = [
        _secret_env("EDGEFLEET_CONSOLE_TOKEN", token.name, token.key)
        if token is not None
        else _secret_env("EDGEFLEET_CONSOLE_TOKEN", console_token_secret(cluster), "console-token"),
        _secret_env("EDGEFLEET_UPLOAD_TOKEN", upload.name, upload.key)
        if upload is not None
        else _secret_env("EDGEFLEET_UPLOAD_TOKEN", tokens_secret(cluster), "upload-token"),
        *_token_env(cluster),
        *_bus_env(cluster),
    ]
    container = {
        "name": "console",
        "image": options.image,
        # Every edgefleet image carries the whole CLI; the subcommand is the first argument.
        "command": ["edgefleet"],
        "args": args,
        "env": env,
        "ports": [{"name": "http", "containerPort": CONSOLE_PORT, "protocol": "TCP"}],
        "readinessProbe": _probe("/healthz", CONSOLE_PORT),
        "livenessProbe": _probe("/healthz", CONSOLE_PORT, 10),
        "resources": _resources(spec.resources, "50m", "96Mi"),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    deployment = _deployment(cluster, "console", 1, container, {"args": args, "env": env},
                             volumes=[{"name": "tmp", "emptyDir": {}}], service_account=account)  # fmt: skip
    deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] = False
    deployment["spec"]["strategy"] = {"type": "Recreate"}
    service_spec: dict[str, Any] = {"type": spec.service.type}
    ports: list[dict[str, Any]] = [
        {"name": "http", "port": spec.service.port, "targetPort": CONSOLE_PORT, "protocol": "TCP"}
    ]
    if spec.service.node_port is not None and spec.service.type != "ClusterIP":
        ports[0]["nodePort"] = spec.service.node_port
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _metadata(cluster, account, "console"),
            "automountServiceAccountToken": False,
        },
        deployment,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _metadata(cluster, account, "console"),
            "spec": {"selector": selector(cluster, "console"), "ports": ports, **service_spec},
        },
    ]


def _service_monitor(cluster: CdnCluster) -> Manifest:
    """Scrapes every edge's admin /metrics through the headless edge Service, with the admin token."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _metadata(cluster, name_of(cluster, "edge"), "edge"),
        "spec": {
            "selector": {"matchLabels": labels(cluster, "edge")},
            "endpoints": [
                {"port": "admin", "path": "/metrics", "interval": "15s",
                 "authorization": {"type": "Bearer", "credentials": {"name": tokens_secret(cluster),
                                                                     "key": "admin-token"}}}
            ],
        },
    }  # fmt: skip


def render(cluster: CdnCluster, options: RenderOptions = RenderOptions()) -> list[Manifest]:
    """Every object a CdnCluster owns, in apply order (dependencies first)."""
    manifests: list[Manifest] = []
    if cluster.spec.purge_bus.external is None:
        manifests += _redis(cluster, options)
    manifests += _origin(cluster, options)
    manifests += _edges(cluster, options)
    manifests += _balancer(cluster, options)
    if cluster.spec.console.enabled:
        manifests += _console(cluster, options)
    if options.service_monitor:
        manifests.append(_service_monitor(cluster))
    return manifests
