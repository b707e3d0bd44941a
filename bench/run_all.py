"""`make bench`: every benchmark once, short, one after another, each printing its own side-by-side table.

The numbers quoted in bench/README.md come from the longer runs written there; this is the quick look. Needs the
Debian packages the benches compare against (nginx, varnish, haproxy, wrk): `hack/system-deps.sh` installs them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = [
    ["edge_vs_anchors.py", "--duration", "3", "--rounds", "3"],
    ["balancer_overhead.py", "--duration", "3", "--rounds", "3"],
    ["hitratio.py", "--sizes", "1%,5%,10%"],
    ["hitratio.py", "--trace", str(HERE.parent.parent / "shared" / "traces" / "cdn-adaptsize-sample.csv"),
     "--sizes", "1%,5%,10%"],
    ["edge_collapsing.py", "--clients", "200"],
    ["fleet_vs_seed.py", "--requests", "3000"],
]  # fmt: skip


def main() -> int:
    failed = []
    for run in RUNS:
        if "--trace" in run and not Path(run[run.index("--trace") + 1]).exists():
            print(f"\n== {' '.join(run)}: skipped, the shared trace is not next to this checkout")
            continue
        print(f"\n== {' '.join(run)}", flush=True)
        if subprocess.run([sys.executable, str(HERE / run[0]), *run[1:]], check=False).returncode != 0:
            failed.append(run[0])
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
