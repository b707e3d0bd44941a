"""The ``edgefleet`` command: one CLI, installed into every image; each image runs a subcommand.

Subcommands are imported only when run, so ``edgefleet edge`` never pays for kopf or Pillow.
Each subcommand module exposes ``configure(parser)`` and ``run(args) -> int``.

Errors a subcommand expects it reports itself, as one line. Anything it did not expect is still reported
as one line here (the traceback goes to the log only with ``EDGEFLEET_DEBUG=1``), never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import NamedTuple, Protocol


class Subcommand(NamedTuple):
    module: str
    summary: str


class SubcommandModule(Protocol):
    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


SUBCOMMANDS: dict[str, Subcommand] = {
    "edge": Subcommand("edgefleet_edge.cli", "Run a caching edge (HTTP/1.1 reverse proxy)"),
    "balancer": Subcommand("edgefleet_balancer.cli", "Run the consistent-hashing balancer"),
    "origin": Subcommand("edgefleet_origin.cli", "Run the origin (assets, image variants, uploads)"),
    "console": Subcommand("edgefleet.console.cli", "Run the web console (assets, purges, fleet)"),
    "operator": Subcommand("edgefleet_operator.cli", "Run the Kubernetes operator"),
    "render": Subcommand("edgefleet_operator.render_cli", "Print the objects the operator would create"),
    "crds": Subcommand("edgefleet.crds_cli", "Print the CustomResourceDefinitions"),
    "up": Subcommand("edgefleet.runtime.up_cli", "Run a whole fleet on this machine"),
    "status": Subcommand("edgefleet.runtime.status_cli", "Show the state of a local fleet"),
    "purge": Subcommand("edgefleet.runtime.purge_cli", "Purge content from a local fleet"),
    "upload": Subcommand("edgefleet.runtime.upload_cli", "Upload a file to a local fleet's origin"),
    "bench": Subcommand("edgefleet.loadgen.cli", "Send e-commerce-like load and report"),
}


def _usage() -> str:
    width = max(len(name) for name in SUBCOMMANDS)
    lines = ["usage: edgefleet <command> [options]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {sub.summary}" for name, sub in SUBCOMMANDS.items()]
    lines += ["", "Run 'edgefleet <command> --help' for a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or arguments[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0 if arguments else 2
    name, rest = arguments[0], arguments[1:]
    sub = SUBCOMMANDS.get(name)
    if sub is None:
        print(f"edgefleet: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    try:
        module: SubcommandModule = importlib.import_module(sub.module)
    except ModuleNotFoundError as exc:
        if exc.name and sub.module.startswith(exc.name):
            print(f"edgefleet: the {name!r} command is not available in this build", file=sys.stderr)
            return 2
        raise
    parser = argparse.ArgumentParser(prog=f"edgefleet {name}", description=sub.summary)
    module.configure(parser)
    args = parser.parse_args(rest)
    try:
        return module.run(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the last boundary: one clear line instead of a traceback
        if os.environ.get("EDGEFLEET_DEBUG"):
            raise
        logging.getLogger(__name__).debug("Unexpected error in %s", name, exc_info=exc)
        reason = " ".join(str(exc).split())[:300] or "no details"
        print(f"edgefleet {name}: unexpected {type(exc).__name__}: {reason} (EDGEFLEET_DEBUG=1 shows where)",
              file=sys.stderr)  # fmt: skip
        return 1


if __name__ == "__main__":
    sys.exit(main())
