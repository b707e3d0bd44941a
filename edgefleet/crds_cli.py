"""``edgefleet crds``: print the CustomResourceDefinitions generated from the API models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgefleet.api.crdgen import CRD_FILES, dump, render_all


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--write",
        metavar="DIR",
        type=Path,
        help="write one file per CRD into DIR (as kept in crds/ and the Helm chart) instead of printing",
    )


def run(args: argparse.Namespace) -> int:
    if args.write is None:
        sys.stdout.write(render_all())
        return 0
    args.write.mkdir(parents=True, exist_ok=True)
    for filename, build in CRD_FILES.items():
        (args.write / filename).write_text(dump(build()))
    return 0
