"""``make demo``: a whole shop CDN on this machine, under shop traffic, in about two minutes.

Starts ``edgefleet up`` with examples/cdncluster-local.yaml, seeds a catalogue of generated product
photos through the origin's upload API, sends e-commerce traffic (steady Zipf browsing, then a flash sale
of new items, then a crawler), purges a product's photos mid-run and waits for every edge to confirm,
then prints what happened and stops everything. Exit status 0 means every step did what it should.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis

from edgefleet.bus import PurgeBus, PurgeMessage
from edgefleet.charts import Marker
from edgefleet.loadgen.catalogue_images import catalogue_objects
from edgefleet.loadgen.report import format_summary, html_report, summarise
from edgefleet.loadgen.runner import PhasePlan, run_load
from edgefleet.loadgen.workload import Catalogue, Phase, Workload
from edgefleet.runtime.state import RuntimeState, StateError, read_runtime
from edgefleet.runtime.upload_cli import upload_object

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "examples" / "cdncluster-local.yaml"
STATE_DIR = ROOT / ".edgefleet" / "demo"
PORT = 18080
PRODUCTS = 80
LOAD_SECONDS = 60.0
PLAN = (PhasePlan(Phase.NORMAL, 0.4), PhasePlan(Phase.FLASH_SALE, 0.4), PhasePlan(Phase.CRAWLER, 0.2))


@dataclass
class DemoOutcome:
    problems: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    purged_at: float | None = None
    """Unix time the mid-run purge was issued (marked on the report's charts)."""

    def say(self, line: str) -> None:
        print(line, flush=True)
        self.lines.append(line)


async def wait_for_fleet(up: subprocess.Popen[bytes], timeout: float = 180.0) -> RuntimeState:
    deadline = time.monotonic() + timeout
    while True:
        if up.poll() is not None:
            raise SystemExit(f"demo: edgefleet up exited with {up.returncode}; see {STATE_DIR / 'up.log'}")
        try:
            return read_runtime(STATE_DIR)
        except StateError as exc:
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"demo: the fleet did not start within {timeout:.0f}s; see {STATE_DIR / 'up.log'}"
                ) from exc
            await asyncio.sleep(0.2)  # polling for the runtime file under a deadline


async def seed(state: RuntimeState, upload_token: str, out: DemoOutcome) -> None:
    catalogue = Catalogue(products=PRODUCTS)
    started = time.monotonic()
    count = 0
    async with aiohttp.ClientSession() as session:
        for key, body, tags in catalogue_objects(catalogue, size=1200):
            await upload_object(session, state.origin_url, upload_token, key, body, tags)
            count += 1
    out.say(
        f"seeded {count} objects ({PRODUCTS} product photos, sale items, static assets) "
        f"in {time.monotonic() - started:.1f}s"
    )


async def purge_mid_run(state: RuntimeState, delay: float, out: DemoOutcome) -> None:
    await asyncio.sleep(delay)  # the demo's script: purge while traffic flows
    current = read_runtime(STATE_DIR)
    members = [e.name for e in current.edges if e.state == "ready"]
    client = aioredis.Redis.from_url(state.redis_url)
    try:
        bus = PurgeBus(client, state.cluster)
        issued = time.time()
        out.purged_at = issued
        entry = await bus.publish_purge(PurgeMessage(purge_id=f"demo-{issued}", tags=("sku-00000",), issuer="demo"))
        deadline = time.monotonic() + 30
        acks: dict[str, float] = {}
        while time.monotonic() < deadline:
            acks = await bus.acknowledgements(entry)
            if all(m in acks for m in members):
                break
            await asyncio.sleep(0.02)  # polling acknowledgements under a deadline
    finally:
        await client.aclose()
    missing = [m for m in members if m not in acks]
    if missing:
        out.problems.append(f"purge not acknowledged by {', '.join(missing)}")
    slowest = max((acks[m] - issued for m in members if m in acks), default=0.0)
    out.say(
        f"purge of tag sku-00000: {len(members) - len(missing)}/{len(members)} edges confirmed, "
        f"slowest after {slowest * 1000:.0f} ms"
    )


async def demo() -> int:
    out = DemoOutcome()
    shutil.rmtree(STATE_DIR, ignore_errors=True)
    STATE_DIR.mkdir(parents=True)
    log = (STATE_DIR / "up.log").open("wb")
    up = subprocess.Popen(
        [sys.executable, "-m", "edgefleet.cli", "up", "-f", str(MANIFEST), "--state-dir", str(STATE_DIR),
         "--port", str(PORT), "--no-screen"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        out.say(f"starting a local fleet from {MANIFEST.relative_to(ROOT)} (logs in {STATE_DIR.relative_to(ROOT)})")
        state = await wait_for_fleet(up)
        from edgefleet.runtime.state import load_or_create_tokens

        tokens = load_or_create_tokens(STATE_DIR)
        out.say(f"fleet up: balancer {state.balancer_url}, {len(state.edges)} edges, origin {state.origin_url}")
        if state.console_url:
            out.say(f'console at {state.console_url} (token: "console" in {STATE_DIR / "tokens.json"})')
        await seed(state, tokens.upload, out)
        edges_before = len(read_runtime(STATE_DIR).edges)
        out.say(f"sending shop traffic for {LOAD_SECONDS:.0f}s: browsing, a flash sale of new items, a crawler")
        workload = Workload(Catalogue(products=PRODUCTS), seed=42)
        purge = asyncio.create_task(purge_mid_run(state, LOAD_SECONDS * 0.3, out))
        load_started = time.time()
        result = await run_load(state.balancer_url, workload, duration=LOAD_SECONDS, concurrency=24, plan=PLAN)
        await purge
        report = STATE_DIR / "report.html"
        events = [Marker(out.purged_at - load_started, "purge of tag sku-00000")] if out.purged_at else []
        report.write_text(html_report(result, title="edgefleet demo", events=events))
        summary = summarise(result)
        final = read_runtime(STATE_DIR)
        out.say("")
        out.say(format_summary(summary))
        out.say(f"edges           {edges_before} at start, {len(final.edges)} at the end")
        if final.last_decision:
            d = final.last_decision
            out.say(f"last scaling    {d.get('from')} -> {d.get('to')}: {d.get('reason')}")
        out.say(f"report          {report.relative_to(ROOT)}")
        if summary.requests == 0 or summary.errors > 0.05 * summary.requests:
            out.problems.append(f"{summary.errors} of {summary.requests} requests failed")
        if not summary.hit_ratio > 0.3:
            out.problems.append(f"hit ratio {summary.hit_ratio:.2f} is implausibly low")
    finally:
        up.send_signal(signal.SIGINT)
        try:
            code = up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            up.kill()
            code = up.wait()
            out.problems.append("edgefleet up did not stop within 60s of Ctrl-C")
        log.close()
    if code != 0:
        out.problems.append(f"edgefleet up exited with {code}")
    for problem in out.problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    print("demo finished: " + ("everything worked" if not out.problems else f"{len(out.problems)} problem(s)"))
    return 1 if out.problems else 0


def main() -> int:
    return asyncio.run(demo())


if __name__ == "__main__":
    sys.exit(main())
