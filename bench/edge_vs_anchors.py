"""Cache hits side by side: the edgefleet edge vs nginx proxy_cache vs Varnish, same origin, same objects,
same wrk load. Each cache is pinned to core 0 and wrk to core 1; ratios are against nginx.

    .venv/bin/python bench/edge_vs_anchors.py --duration 5 --rounds 3   # needs nginx, varnish, wrk (Debian)
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import WrkResult, edgefleet, free_port, process, seed_file_origin, wait_http, wrk

SIZES = {"1k": 1_024, "10k": 10_240, "200k": 204_800}

NGINX_CONF = """
daemon off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {work}/nginx-access.log;  # nginx logs every request by default, as the edge does
    client_body_temp_path {work}/nginx-body;
    proxy_temp_path {work}/nginx-proxy;
    fastcgi_temp_path {work}/nginx-fastcgi;
    uwsgi_temp_path {work}/nginx-uwsgi;
    scgi_temp_path {work}/nginx-scgi;
    proxy_cache_path {work}/nginx-cache levels=1:2 keys_zone=edge:10m max_size=256m inactive=1h;
    upstream origin {{ server 127.0.0.1:{origin}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache edge;
            proxy_cache_lock on;
            add_header X-Cache $upstream_cache_status;
        }}
    }}
}}
"""

VCL = """
vcl 4.1;
backend origin {{ .host = "127.0.0.1"; .port = "{origin}"; }}
sub vcl_deliver {{ if (obj.hits > 0) {{ set resp.http.X-Cache = "HIT"; }} else {{ set resp.http.X-Cache = "MISS"; }} }}
"""


def _median(results: list[WrkResult]) -> WrkResult:
    """Each figure's median across rounds (errors summed)."""
    ordered = sorted(results, key=lambda r: r.requests_per_second)
    middle = ordered[len(ordered) // 2]
    return WrkResult(
        requests_per_second=middle.requests_per_second,
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        errors=sum(r.errors for r in results),
        requests=sum(r.requests for r in results),
        server_cpu_us_per_request=statistics.median(r.server_cpu_us_per_request for r in results),
    )


def run_all(duration: int, connections: int, rounds: int = 3) -> dict[str, dict[str, WrkResult]]:
    results: dict[str, dict[str, WrkResult]] = {}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        work = Path(tmp)
        # nginx workers and the varnish child drop root for their own users: let them in.
        work.chmod(0o755)
        seed_file_origin(work / "assets", {f"bench/{name}.bin": b"x" * size for name, size in SIZES.items()})
        origin = free_port()
        stack.enter_context(process(edgefleet("origin", "--listen", f"127.0.0.1:{origin}", "--storage",
                                              f"file://{work / 'assets'}"), work / "origin.log", cpu=1))  # fmt: skip
        wait_http(f"http://127.0.0.1:{origin}/healthz")

        caches: dict[str, int] = {}
        pids: dict[str, int] = {}
        edge, edge_admin = free_port(), free_port()
        proc = stack.enter_context(process(edgefleet("edge", "--listen", f"127.0.0.1:{edge}", "--admin-listen",
                                              f"127.0.0.1:{edge_admin}", "--origin", f"http://127.0.0.1:{origin}",
                                              "--memory", "256Mi", "--log-level", "WARNING"),
                                    work / "edge.log", cpu=0))  # fmt: skip
        wait_http(f"http://127.0.0.1:{edge_admin}/healthz")
        caches["edge"] = edge
        pids["edge"] = proc.pid

        if shutil.which("nginx"):
            port = free_port()
            for sub in ("nginx-body", "nginx-proxy", "nginx-fastcgi", "nginx-uwsgi", "nginx-scgi", "nginx-cache"):
                (work / sub).mkdir()
                (work / sub).chmod(0o777)
            (work / "nginx.conf").write_text(NGINX_CONF.format(work=work, origin=origin, port=port))
            proc = stack.enter_context(process(["nginx", "-c", str(work / "nginx.conf"), "-p", str(work)],
                                               work / "nginx.log", cpu=0))  # fmt: skip
            caches["nginx proxy_cache"] = port
            pids["nginx proxy_cache"] = proc.pid
        if shutil.which("varnishd"):
            port = free_port()
            (work / "default.vcl").write_text(VCL.format(origin=origin))
            varnishd = ["varnishd", "-F", "-a", f"127.0.0.1:{port}", "-f", str(work / "default.vcl"),
                        "-s", "malloc,256m", "-n", str(work / "varnish"), "-p", "thread_pools=1"]  # fmt: skip
            proc = stack.enter_context(process(varnishd, work / "varnish.log", cpu=0))
            caches["varnish"] = port
            pids["varnish"] = proc.pid

        serving: dict[str, int] = {}
        for name, port in caches.items():
            try:
                for size in SIZES:  # the first request fills the cache: what follows are hits
                    wait_http(f"http://127.0.0.1:{port}/assets/bench/{size}.bin", timeout=30)
            except RuntimeError as exc:
                logs = "".join(p.read_text(errors="replace")[-1500:] for p in work.glob("*.log"))
                print(f"{name} did not serve: {exc}\n{logs}", file=sys.stderr)
                continue
            serving[name] = port
        # Rounds interleave the caches (a, b, c, a, b, c, ...) so a noisy moment on a shared machine lands on
        # all of them alike; each cell reports the median round.
        runs: dict[str, dict[str, list[WrkResult]]] = {name: {size: [] for size in SIZES} for name in serving}
        for _ in range(rounds):
            for size in SIZES:
                for name, port in serving.items():
                    url = f"http://127.0.0.1:{port}/assets/bench/{size}.bin"
                    runs[name][size].append(wrk(url, duration, connections, cpu=1, server_pid=pids[name]))
        for name, by_size in runs.items():
            results[name] = {size: _median(rounds_run) for size, rounds_run in by_size.items()}
    return results


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    args = parser.parse_args()
    results = run_all(args.duration, args.connections, args.rounds)
    anchor = results.get("nginx proxy_cache")
    print(f"{'cache':<20}{'object':>8}{'req/s':>10}{'vs nginx':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
          f"{'cpu us/req':>12}{'cpu vs nginx':>14}")  # fmt: skip
    for name, by_size in results.items():
        for size, r in by_size.items():
            ratio = r.requests_per_second / anchor[size].requests_per_second if anchor else float("nan")
            # > 1 means cheaper than nginx per request: nginx's CPU per request over ours.
            cpu_ratio = anchor[size].server_cpu_us_per_request / r.server_cpu_us_per_request if anchor else float("nan")
            print(f"{name:<20}{size:>8}{r.requests_per_second:>10.0f}{ratio:>10.2f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}"
                  f"{r.errors:>8}{r.server_cpu_us_per_request:>12.1f}{cpu_ratio:>14.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
