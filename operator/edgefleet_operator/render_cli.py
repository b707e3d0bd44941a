"""``edgefleet render -f FILE``: print the objects the operator would create, for review in pull requests."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml
from pydantic import ValidationError

from edgefleet.api import CdnCluster

from .render import RenderOptions, render


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--file", type=Path, required=True, help="CdnCluster manifest")
    parser.add_argument("--namespace", help="namespace to render into (default: the manifest's, else default)")
    parser.add_argument("--image", default=RenderOptions.image, help="edgefleet image")
    parser.add_argument("--service-monitor", action="store_true", help="include the ServiceMonitor")


def run(args: argparse.Namespace) -> int:
    try:
        document = yaml.safe_load(args.file.read_text())
        if args.namespace:
            document.setdefault("metadata", {})["namespace"] = args.namespace
        cluster = CdnCluster.model_validate(document)
    except (OSError, yaml.YAMLError) as exc:
        print(f"edgefleet render: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        for error in exc.errors():
            print(f"edgefleet render: {'.'.join(map(str, error['loc']))}: {error['msg']}", file=sys.stderr)
        return 2
    manifests = render(cluster, RenderOptions(image=args.image, service_monitor=args.service_monitor))
    sys.stdout.write("---\n".join(yaml.safe_dump(m, sort_keys=False, width=120) for m in manifests))
    return 0
