"""The console on the real control plane: the example with ``console.enabled`` applies, renders and becomes
owned objects under the operator, with its own token Secret and a ServiceAccount that can do nothing."""

from __future__ import annotations

import base64
import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from edgefleet_operator.render import RenderOptions, render

from edgefleet.api import CdnCluster
from edgefleet.testing.kube_testenv import KubeTestEnv
from tests.kube.test_operator import Operator, create_minio_secret, eventually, get, operator, ready_fleet

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_PATH = ROOT / "examples" / "cdncluster-console.yaml"
EXAMPLE = yaml.safe_load(EXAMPLE_PATH.read_text())
CONSOLE_OBJECTS = [("deployment", "shop-console"), ("service", "shop-console"), ("serviceaccount", "shop-console")]

__all__ = ["operator"]  # the operator fixture, shared with test_operator.py


def console_shop(namespace: str) -> dict[str, Any]:
    manifest = copy.deepcopy(EXAMPLE)
    manifest["metadata"]["namespace"] = namespace
    manifest["spec"]["autoscaling"]["enabled"] = False
    return manifest


def test_console_example_applies_and_its_rendering_passes_server_dry_run(
    crds_installed: KubeTestEnv, namespace: str
) -> None:
    applied = crds_installed.kubectl("apply", "-n", namespace, "-f", str(EXAMPLE_PATH), check=False)
    assert applied.returncode == 0, applied.stderr
    cli = subprocess.run([sys.executable, "-m", "edgefleet.cli", "render", "-f", str(EXAMPLE_PATH)],
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert "name: shop-console" in cli.stdout
    rendered = yaml.safe_dump_all(render(CdnCluster.model_validate(console_shop(namespace)), RenderOptions()))
    dry = crds_installed.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=rendered, check=False)
    assert dry.returncode == 0, dry.stderr
    assert "deployment.apps/shop-console created (server dry run)" in dry.stdout


def test_operator_runs_the_console_with_a_generated_token_and_no_api_access(
    operator: Operator, kube_env: KubeTestEnv, namespace: str
) -> None:
    create_minio_secret(kube_env, namespace)
    ready_fleet(kube_env, namespace, console_shop(namespace), operator)
    for kind, name in CONSOLE_OBJECTS:
        obj = eventually(lambda k=kind, n=name: get(kube_env, k, n, namespace), f"{kind} {name}")
        owner = obj["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"]) == ("CdnCluster", "shop")
    secret = eventually(lambda: get(kube_env, "secret", "shop-console-token", namespace), "the console token Secret")
    token = base64.b64decode(secret["data"]["console-token"]).decode()
    assert len(token) >= 32
    deployment = get(kube_env, "deployment", "shop-console", namespace)
    assert deployment is not None
    assert token not in json.dumps(deployment), "the token is referenced, never inlined"
    account = f"system:serviceaccount:{namespace}:shop-console"
    for verb, resource in [("get", "secrets"), ("list", "pods"), ("get", "endpointslices.discovery.k8s.io"),
                           ("get", "cdnclusters.cdn.edgefleet.io")]:  # fmt: skip
        can = kube_env.kubectl("auth", "can-i", verb, resource, f"--as={account}", "-n", namespace, check=False)
        assert can.stdout.strip() == "no", f"the console account may {verb} {resource}"

    def console_pods() -> list[dict[str, Any]]:
        listed = kube_env.kubectl("get", "pods", "-n", namespace, "-l", "app.kubernetes.io/component=console",
                                  "-o", "json").stdout  # fmt: skip
        items: list[dict[str, Any]] = json.loads(listed)["items"]
        return items

    pod = eventually(console_pods, "a console pod")[0]
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert not any(v.get("projected") for v in pod["spec"].get("volumes", [])), "no service account token mounted"
