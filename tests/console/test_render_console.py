"""``spec.console``: what the operator renders for it, and what it never renders."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from edgefleet_operator.render import RenderOptions, render

from edgefleet.api import CdnCluster

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "cdncluster-console.yaml"
SCHEMA_VERSION = "1.37.0"


def example(**console: Any) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    body["metadata"].update(namespace="shop", uid="0c9f5a58-6d1c-4b5e-9d43-7a1b2c3d4e5f", generation=1)
    body["spec"]["console"].update(console)
    return body


def objects(body: dict[str, Any]) -> dict[tuple[str, str], Any]:
    return {(m["kind"], m["metadata"]["name"]): m for m in render(CdnCluster.model_validate(body), RenderOptions())}


def test_console_is_rendered_only_when_enabled() -> None:
    enabled = objects(example())
    disabled = objects(example(enabled=False))
    console = {("ServiceAccount", "shop-console"), ("Deployment", "shop-console"), ("Service", "shop-console")}
    assert console <= set(enabled)
    assert not console & set(disabled)
    assert set(enabled) - console == set(disabled), "enabling the console changes nothing else"


def test_console_pod_has_no_kubernetes_api_access_and_runs_locked_down() -> None:
    rendered = objects(example())
    account = rendered[("ServiceAccount", "shop-console")]
    assert account["automountServiceAccountToken"] is False
    assert not any(kind in ("Role", "RoleBinding", "ClusterRole") and name == "shop-console" for kind, name in rendered)
    pod = rendered[("Deployment", "shop-console")]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "shop-console" and pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["args"][0] == "console"
    assert "--edges-dns=shop-edge.shop.svc" in container["args"]
    assert "--prometheus-url=http://prometheus-operated.monitoring.svc:9090" in container["args"]


def test_console_tokens_come_from_secrets_and_never_from_the_manifest() -> None:
    container = objects(example())[("Deployment", "shop-console")]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert env["EDGEFLEET_CONSOLE_TOKEN"] == {"name": "shop-console-token", "key": "console-token"}
    assert env["EDGEFLEET_UPLOAD_TOKEN"] == {"name": "shop-tokens", "key": "upload-token"}
    assert env["EDGEFLEET_ADMIN_TOKEN"] == {"name": "shop-tokens", "key": "admin-token"}
    own = objects(example(tokenSecret={"name": "editors", "key": "token"}))
    container = own[("Deployment", "shop-console")]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert env["EDGEFLEET_CONSOLE_TOKEN"] == {"name": "editors", "key": "token"}


def test_console_service_follows_the_spec() -> None:
    service = objects(example(service={"type": "NodePort", "port": 8082, "nodePort": 30082}))[
        ("Service", "shop-console")
    ]
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8082, "targetPort": 8082, "protocol": "TCP", "nodePort": 30082}
    ]


@pytest.mark.parametrize("kind", ["ServiceAccount", "Deployment", "Service"])
def test_console_objects_are_valid_kubernetes(kind: str) -> None:
    manifest = objects(example())[(kind, "shop-console")]
    kubernetes_validate.validate(copy.deepcopy(manifest), SCHEMA_VERSION, strict=True)


def test_render_cli_shows_the_console() -> None:
    result = subprocess.run([sys.executable, "-m", "edgefleet.cli", "render", "-f", str(EXAMPLE)],
                            capture_output=True, text=True, check=True)  # fmt: skip
    documents = [d for d in yaml.safe_load_all(result.stdout) if d]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in documents}
    assert ("Deployment", "shop-console") in kinds and ("Service", "shop-console") in kinds
    assert "console-token" in result.stdout and "secretKeyRef" in result.stdout
    assert json.dumps(documents) == json.dumps([d for d in yaml.safe_load_all(result.stdout) if d])


def test_console_spec_rejects_a_bad_node_port() -> None:
    with pytest.raises(ValueError, match=r"node_?[pP]ort"):
        CdnCluster.model_validate(example(service={"type": "NodePort", "nodePort": 80}))
