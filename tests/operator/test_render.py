"""``render`` is pure: same CdnCluster, same bytes; every object owned, labelled, secured and schema-valid."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from edgefleet_operator.render import CONFIG_HASH, RenderOptions, render

from edgefleet.api import CdnCluster

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_VERSION = "1.37.0"
LABELS = ("name", "instance", "component", "managed-by", "part-of")


def example(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load((ROOT / "examples/cdncluster.yaml").read_text())
    body["metadata"].update(namespace="shop", uid="0c9f5a58-6d1c-4b5e-9d43-7a1b2c3d4e5f", generation=1)
    for path, value in overrides.items():
        node = body
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return body


def rendered(body: dict[str, Any], options: RenderOptions | None = None) -> dict[tuple[str, str], Any]:
    manifests = render(CdnCluster.model_validate(body), options or RenderOptions())
    return {(m["kind"], m["metadata"]["name"]): m for m in manifests}
    return {(m["kind"], m["metadata"]["name"]): m for m in manifests}


def pod_template(objects: dict[tuple[str, str], Any], name: str) -> dict[str, Any]:
    template: dict[str, Any] = objects[("Deployment", name)]["spec"]["template"]
    return template


def test_render_is_byte_identical_across_runs() -> None:
    cluster = CdnCluster.model_validate(example())
    first = yaml.safe_dump_all(render(cluster, RenderOptions(service_monitor=True)))
    again = yaml.safe_dump_all(render(CdnCluster.model_validate(example()), RenderOptions(service_monitor=True)))
    assert first == again


def test_render_produces_every_component_object() -> None:
    assert set(rendered(example())) == {
        ("Deployment", "shop-redis"), ("Service", "shop-redis"),
        ("Deployment", "shop-origin"), ("Service", "shop-origin"),
        ("Deployment", "shop-edge"), ("Service", "shop-edge"), ("PodDisruptionBudget", "shop-edge"),
        ("ServiceAccount", "shop-balancer"), ("Role", "shop-balancer"), ("RoleBinding", "shop-balancer"),
        ("Deployment", "shop-balancer"), ("Service", "shop"),
    }  # fmt: skip


def test_render_with_external_bus_has_no_managed_redis() -> None:
    objects = rendered(example(**{"spec.purgeBus.external": {"url": "redis://bus.infra.svc:6379/2"}}))
    assert ("Deployment", "shop-redis") not in objects
    assert "--redis=redis://bus.infra.svc:6379/2" in pod_template(objects, "shop-edge")["spec"]["containers"][0]["args"]


def test_render_objects_are_owned_and_labelled() -> None:
    for (kind, name), manifest in rendered(example(), RenderOptions(service_monitor=True)).items():
        meta = manifest["metadata"]
        assert meta["namespace"] == "shop", (kind, name)
        [owner] = meta["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["controller"], owner["blockOwnerDeletion"]) == (
            "CdnCluster", "shop", True, True,
        ), (kind, name)  # fmt: skip
        assert all(f"app.kubernetes.io/{label}" in meta["labels"] for label in LABELS), (kind, name)


def test_render_pods_run_non_root_on_a_read_only_root() -> None:
    objects = rendered(example())
    for (kind, name), manifest in objects.items():
        if kind != "Deployment":
            continue
        pod = manifest["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"] == {"drop": ["ALL"]}, name
            mounted = {m["name"] for m in container["volumeMounts"]}
            assert mounted <= {v["name"] for v in pod["volumes"]}, name
    assert pod_template(objects, "shop-edge")["spec"]["securityContext"]["runAsUser"] == 10001
    assert pod_template(objects, "shop-redis")["spec"]["securityContext"]["runAsUser"] == 10001


def test_render_runs_the_managed_bus_from_the_edgefleet_image() -> None:
    objects = rendered(example())
    [redis] = pod_template(objects, "shop-redis")["spec"]["containers"]
    [edge] = pod_template(objects, "shop-edge")["spec"]["containers"]
    # One image for the whole fleet: nothing to pull from Docker Hub, Debian's redis-server inside it.
    assert redis["image"] == edge["image"]
    assert redis["command"] == ["/usr/bin/redis-server"]


def test_render_edges_spread_probe_readiness_and_take_resources_from_spec() -> None:
    objects = rendered(example())
    pod = pod_template(objects, "shop-edge")
    [edge] = pod["spec"]["containers"]
    assert edge["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 9090}
    assert edge["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 9090}
    assert edge["resources"] == {"requests": {"cpu": "250m", "memory": "384Mi"}, "limits": {"memory": "512Mi"}}
    assert pod["spec"]["topologySpreadConstraints"]
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert objects[("Deployment", "shop-edge")]["spec"]["replicas"] == 2, "effective replicas = min"
    assert objects[("Service", "shop-edge")]["spec"]["clusterIP"] == "None"


def test_render_never_inlines_secret_values() -> None:
    text = yaml.safe_dump_all(render(CdnCluster.model_validate(example())))
    assert "kind: Secret" not in text
    edge_env = pod_template(rendered(example()), "shop-edge")["spec"]["containers"][0]["env"]
    token = next(e for e in edge_env if e["name"] == "EDGEFLEET_ADMIN_TOKEN")
    assert token["valueFrom"]["secretKeyRef"] == {"name": "shop-tokens", "key": "admin-token"}


def test_render_balancer_role_only_reads_endpoint_slices() -> None:
    role = rendered(example())[("Role", "shop-balancer")]
    assert role["rules"] == [
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]}
    ]


@pytest.mark.parametrize(
    ("path", "value", "rolled", "kept"),
    [
        ("spec.edge.cache.memory", "512Mi", {"shop-edge"}, {"shop-origin", "shop-balancer"}),
        ("spec.origin.defaultTtl", "2h", {"shop-origin"}, {"shop-edge", "shop-balancer"}),
        ("spec.edge.replicas.min", 3, set(), {"shop-edge", "shop-origin", "shop-balancer"}),
    ],
    ids=["cache-size-rolls-edges", "ttl-rolls-origin", "replicas-roll-nothing"],
)
def test_render_config_hash_changes_only_where_config_changed(
    path: str, value: Any, rolled: set[str], kept: set[str]
) -> None:
    before, after = rendered(example()), rendered(example(**{path: value}))

    def hashes(objects: dict[tuple[str, str], Any], names: set[str]) -> dict[str, str]:
        return {n: pod_template(objects, n)["metadata"]["annotations"][CONFIG_HASH] for n in names}

    assert hashes(before, kept) == hashes(after, kept)
    changed = hashes(before, rolled)
    assert all(changed[n] != h for n, h in hashes(after, rolled).items())


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"spec.purgeBus.external": {"url": "redis://bus:6379/0", "passwordSecret": {"name": "bus", "key": "pw"}}},
        {"spec.balancer.service": {"type": "NodePort", "port": 80, "nodePort": 30080}},
        {"spec.origin.storage": {"filesystem": {"pvc": {"claimName": "assets"}}}},
    ],
    ids=["example", "external-bus", "node-port", "filesystem-pvc"],
)
def test_render_validates_against_the_kubernetes_schemas(overrides: dict[str, Any]) -> None:
    for manifest in render(CdnCluster.model_validate(copy.deepcopy(example(**overrides)))):
        kubernetes_validate.validate(manifest, SCHEMA_VERSION, strict=True)


def test_render_edges_run_workers_only_when_asked() -> None:
    [default] = pod_template(rendered(example()), "shop-edge")["spec"]["containers"]
    assert not any(arg.startswith("--workers") for arg in default["args"]), "one worker renders as before"
    [four] = pod_template(rendered(example(**{"spec.edge.workers": 4})), "shop-edge")["spec"]["containers"]
    assert "--workers=4" in four["args"]


def test_render_edges_pass_a_cache_policy_other_than_the_default() -> None:
    [default] = pod_template(rendered(example()), "shop-edge")["spec"]["containers"]
    assert not any(arg.startswith("--cache-policy") for arg in default["args"])
    [lru] = pod_template(rendered(example(**{"spec.edge.cache.policy": "lru"})), "shop-edge")["spec"]["containers"]
    assert "--cache-policy=lru" in lru["args"]


def test_api_cache_policies_are_the_edges() -> None:
    import typing

    from edgefleet_edge.tiers import DEFAULT_POLICY, POLICY_NAMES

    from edgefleet.api.cdncluster import CachePolicy, EdgeCache
    from edgefleet.components import DEFAULT_CACHE_POLICY

    assert typing.get_args(CachePolicy) == POLICY_NAMES
    assert EdgeCache().policy == DEFAULT_POLICY == DEFAULT_CACHE_POLICY, "the default is left out of the arguments"
