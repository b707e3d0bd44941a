"""crds/ is generated from the API models: never stale, fully described, byte-identical every run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgefleet.api.crdgen import CRD_FILES, dump, render_all

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("filename", sorted(CRD_FILES), ids=sorted(CRD_FILES))
def test_crd_file_matches_the_models(filename: str) -> None:
    assert (ROOT / "crds" / filename).read_text() == dump(CRD_FILES[filename]()), (
        f"crds/{filename} is stale: run `make crds`"
    )


def test_edgefleet_crds_prints_both_crds_identically_every_time() -> None:
    runs = [
        subprocess.run([sys.executable, "-m", "edgefleet.cli", "crds"], capture_output=True, text=True, check=True)
        for _ in range(2)
    ]
    assert runs[0].stdout == runs[1].stdout == render_all()
    kinds = [doc["spec"]["names"]["kind"] for doc in yaml.safe_load_all(runs[0].stdout)]
    assert kinds == ["CdnCluster", "PurgeRequest"]


def _undescribed(schema: dict[str, Any], path: str) -> list[str]:
    missing = []
    for name, sub in schema.get("properties", {}).items():
        where = f"{path}.{name}"
        if "description" not in sub:
            missing.append(where)
        missing += _undescribed(sub, where)
    if "items" in schema:
        missing += _undescribed(schema["items"], f"{path}[]")
    return missing


@pytest.mark.parametrize("filename", sorted(CRD_FILES), ids=sorted(CRD_FILES))
def test_every_spec_and_status_field_has_a_description(filename: str) -> None:
    crd = CRD_FILES[filename]()
    root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    missing = _undescribed(root["properties"]["spec"], "spec") + _undescribed(root["properties"]["status"], "status")
    assert missing == []
