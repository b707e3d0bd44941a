"""HAProxy settings of the balancer, one at a time: CPU per request of each variant, side by side in one run.

Each variant is the balancer's own rendered configuration (``haproxy_config.render``) with one edit, run as its
own HAProxy on core 0 next to one edge (as in ``balancer_overhead.py``), its server slot filled through the
runtime API exactly as the agent does. wrk (core 1, one thread, kept-alive connections) loads each in turn,
rounds alternating, and CPU per request comes from /proc (user + system, all threads). ``base`` runs twice
(``base`` and ``base-again``): the spread between those two is the noise floor of the run, and a variant whose
difference from ``base`` is inside it has shown nothing.

    .venv/bin/python bench/balancer_tuning.py --duration 2 --rounds 7 base base-again no-forwardfor no-x-edge
    .venv/bin/python bench/balancer_tuning.py --syscalls --duration 3 base lean   # system calls per request
    .venv/bin/python bench/balancer_tuning.py --list
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from balancer_overhead import Times, start_origin_and_edge, times
from edgefleet_balancer.haproxy_config import HAProxyConfig, render
from edgefleet_balancer.membership import Member, runtime_commands
from edgefleet_balancer.runtime_api import RuntimeApi
from harness import free_port, process, wait_http, wrk

Edit = Callable[[str], str]


def replace(old: str, new: str) -> Edit:
    def edit(text: str) -> str:
        if old not in text:
            raise ValueError(f"the rendered configuration has no {old!r}")
        return text.replace(old, new, 1)

    return edit


def drop(fragment: str) -> Edit:
    def edit(text: str) -> str:
        kept = [line for line in text.split("\n") if not line.strip().startswith(fragment)]
        if len(kept) == text.count("\n") + 1:
            raise ValueError(f"the rendered configuration has no line starting {fragment!r}")
        return "\n".join(kept)

    return edit


def in_global(*lines: str) -> Edit:
    return replace("\nglobal\n", "\nglobal\n" + "".join(f"    {line}\n" for line in lines))


def in_defaults(line: str) -> Edit:
    return replace("\ndefaults\n", f"\ndefaults\n    {line}\n")


L7_RETRY = "retry-on conn-failure empty-response response-timeout"
VARIANTS: dict[str, tuple[str, list[Edit]]] = {
    "base": ("the balancer's configuration as rendered (nbthread 1, as the bench's balancer)", []),
    "base-again": ("the same again: the run's noise floor", []),
    "nbthread-2": ("two threads on the one shared core", [replace("nbthread 1", "nbthread 2")]),
    "no-forwardfor": ("no X-Forwarded-For", [drop("option forwardfor")]),
    "no-x-edge": ("no X-Edge (no map lookup, no header)", [drop("http-response set-header X-Edge")]),
    "no-l7-retry": ("retry only refused connections (no copy of each request)",
                    [replace(L7_RETRY, "retry-on conn-failure")]),
    "no-wait-for-body": ("no Expect: 100-continue rule", [drop("http-request wait-for-body")]),
    "no-log": ("no log at all instead of httplog + dontlog-normal",
               [replace("    log global\n    option httplog\n    option dontlog-normal\n", "    no log\n")]),
    "reuse-safe": ("http-reuse safe", [replace("http-reuse always", "http-reuse safe")]),
    "reuse-never": ("http-reuse never (one edge connection per client connection)",
                    [replace("http-reuse always", "http-reuse never")]),
    "server-close": ("option http-server-close", [in_defaults("option http-server-close")]),
    "roundrobin": ("balance roundrobin (no hashing)", [replace("balance uri whole path-only", "balance roundrobin")]),
    "no-balance-factor": ("no hash-balance-factor (unbounded loads)", [drop("hash-balance-factor")]),
    "bufsize-8k": ("tune.bufsize 8192", [in_global("tune.bufsize 8192")]),
    "bufsize-32k": ("tune.bufsize 32768", [in_global("tune.bufsize 32768")]),
    "maxpollevents-1k": ("tune.maxpollevents 1024", [in_global("tune.maxpollevents 1024")]),
    "runqueue-depth-1k": ("tune.runqueue-depth 1000", [in_global("tune.runqueue-depth 1000")]),
    "idle-pool-unshared": ("tune.idle-pool.shared off", [in_global("tune.idle-pool.shared off")]),
    "busy-polling": ("busy-polling", [in_global("busy-polling")]),
    "profiling-off": ("profiling.tasks off", [in_global("profiling.tasks off")]),
    "server-maxconn": ("maxconn 64 per edge", [replace("weight 256", "weight 256 maxconn 64")]),
    "splice": ("option splice-response", [in_defaults("option splice-response")]),
    "fd-edge-triggered": ("tune.fd.edge-triggered on (experimental in 2.6)",
                          [in_global("expose-experimental-directives", "tune.fd.edge-triggered on")]),
    "lean": ("no forwardfor, no X-Edge, no L7 retry, no wait-for-body: what the features cost together",
             [drop("option forwardfor"), drop("http-response set-header X-Edge"), drop("http-request wait-for-body"),
              replace(L7_RETRY, "retry-on conn-failure")]),
}  # fmt: skip


SWITCHES = ("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")


def context_switches(pid: int) -> int:
    """Voluntary and involuntary context switches of every thread of ``pid`` so far."""
    total = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        try:
            lines = status.read_text().splitlines()
        except OSError:
            continue  # the thread exited while we looked
        total += sum(int(line.split()[1]) for line in lines if line.startswith(SWITCHES))
    return total


async def fill_slots(api: RuntimeApi, commands: list[str]) -> None:
    for command in commands:
        await api.change(command)


def wait_path(path: Path, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} did not appear within {timeout:.0f}s: {log.read_text()[-2000:]}")
        time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("variants", nargs="*", default=["base", "base-again"])
    parser.add_argument("--duration", type=int, default=2, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--list", action="store_true", help="list the variants and exit")
    parser.add_argument(
        "--syscalls",
        action="store_true",
        help="instead of CPU, count each server's system calls per request (strace -c, one run each)",
    )
    args = parser.parse_args()
    if args.list:
        for name, (what, _) in VARIANTS.items():
            print(f"{name:<20}{what}")
        return 0
    if "base" not in args.variants:
        args.variants.insert(0, "base")
    runs: dict[str, list[tuple[int, Times, float]]] = {name: [] for name in ["direct", *args.variants]}
    switches: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    """Context switches per request of the front and of the edge, per round."""
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        work = Path(tmp)
        edge, edge_admin, edge_proc = start_origin_and_edge(stack, work)
        path = "/assets/bench/10k.bin"
        wait_http(f"http://127.0.0.1:{edge}{path}")  # fills the cache: every measured request is a hit
        targets = {"direct": (edge, edge_proc.pid)}
        member = {1: Member("edge-0", "127.0.0.1", edge, edge_admin)}
        for name in args.variants:
            port, home = free_port(), work / name
            home.mkdir()
            config = HAProxyConfig(listen=("127.0.0.1", port), metrics_socket=home / "metrics.sock",
                                   socket=home / "api.sock", edge_names_map=home / "edges.map",
                                   warm_socket=home / "warm.sock", threads=1)  # fmt: skip
            text = render(config)
            for edit in VARIANTS[name][1]:
                text = edit(text)
            (home / "edges.map").write_text("")
            (home / "haproxy.cfg").write_text(text)
            haproxy = stack.enter_context(process(["haproxy", "-db", "-f", str(home / "haproxy.cfg")],
                                                  home / "haproxy.log", cpu=0))  # fmt: skip
            wait_path(home / "api.sock", home / "haproxy.log")
            names_map = str(home / "edges.map") if "X-Edge" in text else None
            commands = runtime_commands({}, member, names_map)
            asyncio.run(fill_slots(RuntimeApi(home / "api.sock"), commands))
            wait_http(f"http://127.0.0.1:{port}{path}")
            targets[name] = (port, haproxy.pid)
        if args.syscalls:
            for name, (port, pid) in targets.items():
                count_syscalls(name, f"http://127.0.0.1:{port}{path}", pid, args, work / f"{name}.strace")
            return 0
        for _ in range(args.rounds):
            for name, (port, pid) in targets.items():
                before = times([pid]), times([edge_proc.pid])
                switched = context_switches(pid), context_switches(edge_proc.pid)
                result = wrk(f"http://127.0.0.1:{port}{path}", args.duration, args.connections, cpu=1)
                front, edge_t = times([pid]) - before[0], times([edge_proc.pid]) - before[1]
                if result.errors:
                    raise RuntimeError(f"{name}: {result.errors} errors")
                runs[name].append((result.requests, front, edge_t.total / max(1, result.requests) * 1e6))
                done = max(1, result.requests)
                switches[name].append(((context_switches(pid) - switched[0]) / done,
                                       (context_switches(edge_proc.pid) - switched[1]) / done))  # fmt: skip
    report(runs, switches, args)
    return 0


def count_syscalls(name: str, url: str, pid: int, args: argparse.Namespace, out: Path) -> None:
    """strace slows the server down, so this says how many calls a request takes, not what they cost."""
    tracer = subprocess.Popen(["strace", "-c", "-f", "-p", str(pid), "-o", str(out)], stderr=subprocess.PIPE, text=True)
    try:
        assert tracer.stderr is not None
        if "attached" not in tracer.stderr.readline():  # strace says so once it traces; EOF if it could not
            raise RuntimeError(f"strace could not attach to {name} (pid {pid})")
        result = wrk(url, args.duration, args.connections, cpu=1)
    finally:
        tracer.terminate()
        tracer.wait(timeout=30)
    calls = []
    for line in out.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[3].isdigit() and fields[-1] != "total":
            calls.append((int(fields[3]) / max(1, result.requests), fields[-1]))
    top = ", ".join(f"{call} {per:.2f}" for per, call in sorted(calls, reverse=True) if per >= 0.01)
    print(f"{name:<20}{sum(per for per, _ in calls):6.2f} system calls per request: {top}")


def report(
    runs: dict[str, list[tuple[int, Times, float]]], switches: dict[str, list[tuple[float, float]]],
    args: argparse.Namespace,
) -> None:  # fmt: skip
    def us(requests: int, t: Times) -> float:
        return t.total / max(1, requests) * 1e6

    med = statistics.median
    direct, base = runs["direct"], runs["base"]
    print(f"median of {args.rounds} alternating rounds, {args.duration}s each, {args.connections} connections; "
          "ratios are medians of each round's ratio")  # fmt: skip
    print(f"{'variant':<20}{'front us/req':>13}{'user':>7}{'sys':>7}{'edge us/req':>13}"
          f"{'vs base':>9}{'vs direct edge':>16}{'vs edge same run':>18}{'switches/req':>14}{'(edge)':>8}")  # fmt: skip
    for name, rounds in runs.items():
        front = [us(n, t) for n, t, _ in rounds]
        user = med(us(n, Times(t.user)) for n, t, _ in rounds)
        system = med(us(n, Times(0.0, t.system)) for n, t, _ in rounds)
        vs_base = med(f / us(n, t) for f, (n, t, _) in zip(front, base, strict=True))
        vs_direct = med(f / d for f, (_, _, d) in zip(front, direct, strict=True))
        same_run = med(f / e for f, (_, _, e) in zip(front, rounds, strict=True))
        print(f"{name:<20}{med(front):>13.1f}{user:>7.1f}{system:>7.1f}{med(e for _, _, e in rounds):>13.1f}"
              f"{vs_base:>9.2f}{vs_direct:>16.2f}{same_run:>18.2f}"
              f"{med(f for f, _ in switches[name]):>14.2f}{med(e for _, e in switches[name]):>8.2f}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
