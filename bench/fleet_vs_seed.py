"""The whole fleet against the topology this project grew from, replaying one e-commerce trace through each.

- fleet: edgefleet balancer (HAProxy) -> two edgefleet edges
- seed:  nginx with ``hash $request_uri consistent`` -> two nginx ``proxy_cache`` edges

Same origin process and objects, same cache size per edge (memory tier vs nginx ``max_size``), the same
replayed trace (bench/ecommerce_trace.py: Zipf catalogue, image variants, static assets, a flash sale, a
crawler) from the same client, each front door starting cold. Reported side by side: throughput, p50/p99,
fleet hit ratio (from each edge's X-Cache) and requests that reached the origin (the origin's own counter).

    .venv/bin/python bench/fleet_vs_seed.py --requests 6000   # needs nginx and haproxy (Debian)
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ecommerce_trace import generate
from harness import edgefleet, free_port, process, seed_file_origin, wait_http

NGINX_COMMON = """
daemon off;
worker_processes 1;
pid {work}/{name}.pid;
error_log {work}/{name}-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {work}/{name}-body;
    proxy_temp_path {work}/{name}-proxy;
    fastcgi_temp_path {work}/{name}-fastcgi;
    uwsgi_temp_path {work}/{name}-uwsgi;
    scgi_temp_path {work}/{name}-scgi;
    {body}
}}
"""

NGINX_EDGE = """
    proxy_cache_path {work}/{name}-cache levels=1:2 keys_zone={name}:10m max_size={cache_bytes} inactive=1h;
    upstream origin {{ server 127.0.0.1:{origin}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache {name};
            proxy_cache_lock on;
            add_header X-Cache $upstream_cache_status;
        }}
    }}
"""

NGINX_FRONT = """
    upstream edges {{
        hash $request_uri consistent;
        server 127.0.0.1:{edge0};
        server 127.0.0.1:{edge1};
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://edges;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
"""


@dataclass
class Replay:
    seconds: float
    latencies_ms: list[float]
    hits: int
    errors: int

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)


def object_path(key: str) -> str:
    """A trace key as a plain object path (the origin serves files; variants become their own files)."""
    path, _, query = key.partition("?")
    suffix = "-" + re.sub(r"[^a-z0-9]+", "-", query.lower()).strip("-") if query else ""
    return f"{path}{suffix}.bin"


async def replay(base: str, paths: list[str], concurrency: int) -> Replay:
    latencies: list[float] = []
    hits = errors = 0
    queue = iter(paths)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def worker() -> None:
            nonlocal hits, errors
            for path in queue:
                started = time.perf_counter()
                try:
                    async with session.get(base + path) as response:
                        await response.read()
                        if response.status != 200:
                            errors += 1
                        elif response.headers.get("X-Cache", "").upper().startswith(("HIT", "STALE")):
                            hits += 1
                except (aiohttp.ClientError, TimeoutError):
                    errors += 1
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Replay(time.perf_counter() - started, latencies, hits, errors)


def origin_requests(origin: str) -> float:
    with urllib.request.urlopen(f"{origin}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("edgefleet_origin_requests_total")
    )


def nginx(stack: ExitStack, work: Path, name: str, body: str) -> None:
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi", "cache"):
        (work / f"{name}-{sub}").mkdir(exist_ok=True)
    conf = work / f"{name}.conf"
    conf.write_text(NGINX_COMMON.format(work=work, name=name, body=body))
    stack.enter_context(process(["nginx", "-c", str(conf), "-p", str(work)], work / f"{name}.log", cpu=0))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=6000, help="requests replayed through each front door")
    parser.add_argument("--products", type=int, default=1500)
    parser.add_argument("--scale", type=float, default=0.1, help="object sizes, as a fraction of the trace's")
    parser.add_argument("--cache-fraction", type=float, default=0.15, help="per-edge cache, of unique bytes")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--load-factor", type=float, default=1.25, help="the balancer's bounded-load factor")
    parser.add_argument("--cache-policy", default=None, help="the edges' --cache-policy (default: the edge's)")
    args = parser.parse_args()

    trace = [(object_path(r.key), max(1, int(r.size * args.scale))) for r in generate(args.requests, args.products, 1)]
    objects = dict(trace)
    unique = sum(objects.values())
    cache_bytes = max(1 << 20, int(unique * args.cache_fraction))
    paths = ["/assets" + path.removeprefix("/assets") for path, _ in trace]
    print(f"trace: {len(trace)} requests, {len(objects)} objects, {unique / 2**20:.1f} MiB unique; "
          f"each of 2 edges caches {cache_bytes / 2**20:.1f} MiB")  # fmt: skip

    results: dict[str, tuple[Replay, float]] = {}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        work = Path(tmp)
        work.chmod(0o755)  # nginx workers drop root for their own user
        files = {path.removeprefix("/assets/"): b"x" * size for path, size in objects.items()}
        files["warmup.bin"] = b"ready"
        seed_file_origin(work / "assets", files)
        token = "bench-token"
        origin = free_port()
        stack.enter_context(process(edgefleet("origin", "--listen", f"127.0.0.1:{origin}", "--storage",
                                              f"file://{work / 'assets'}"), work / "origin.log", cpu=1))  # fmt: skip
        wait_http(f"http://127.0.0.1:{origin}/healthz")
        origin_url = f"http://127.0.0.1:{origin}"

        # The fleet: two edgefleet edges behind the edgefleet balancer.
        edges = []
        for i in range(2):
            data, admin = free_port(), free_port()
            stack.enter_context(process(edgefleet(
                "edge", "--listen", f"127.0.0.1:{data}", "--admin-listen", f"127.0.0.1:{admin}",
                "--origin", f"http://127.0.0.1:{origin}", "--memory", str(cache_bytes), "--name", f"edge-{i}",
                "--log-level", "WARNING", *(("--cache-policy", args.cache_policy) if args.cache_policy else ())),
                work / f"edge-{i}.log", cpu=0))  # fmt: skip
            wait_http(f"http://127.0.0.1:{admin}/healthz")
            edges.append(f"edge-{i}=http://127.0.0.1:{data}")
        bal, bal_admin = free_port(), free_port()
        stack.enter_context(process(edgefleet(
            "balancer", "--listen", f"127.0.0.1:{bal}", "--admin-listen", f"127.0.0.1:{bal_admin}",
            "--admin-token", token, "--haproxy-threads", "1", "--load-factor", str(args.load_factor),
            "--edges", ",".join(edges)),
            work / "balancer.log", cpu=0))  # fmt: skip
        wait_http(f"http://127.0.0.1:{bal_admin}/readyz", headers={"Authorization": f"Bearer {token}"})

        # The seed: nginx consistent hash in front of two nginx proxy_cache edges.
        seed_edges = [free_port(), free_port()]
        for i, port in enumerate(seed_edges):
            nginx(stack, work, f"nginx-edge-{i}", NGINX_EDGE.format(
                work=work, name=f"nginx-edge-{i}", cache_bytes=cache_bytes, origin=origin, port=port))  # fmt: skip
        front = free_port()
        nginx(stack, work, "nginx-front", NGINX_FRONT.format(edge0=seed_edges[0], edge1=seed_edges[1], port=front))
        for port in (*seed_edges, front):
            wait_http(f"http://127.0.0.1:{port}/assets/warmup.bin", timeout=30)

        for name, port in (("fleet (edgefleet)", bal), ("seed (nginx)", front)):
            before = origin_requests(origin_url)
            result = asyncio.run(replay(f"http://127.0.0.1:{port}", paths, args.concurrency))
            results[name] = (result, origin_requests(origin_url) - before)

    print(f"{'front door':<20}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'hit ratio':>11}{'origin reqs':>13}{'errors':>8}")
    for name, (result, origin_count) in results.items():
        cuts = statistics.quantiles(result.latencies_ms, n=100)
        print(f"{name:<20}{result.requests / result.seconds:>9.0f}{cuts[49]:>9.2f}{cuts[98]:>9.2f}"
              f"{result.hits / result.requests:>11.3f}{origin_count:>13.0f}{result.errors:>8}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
