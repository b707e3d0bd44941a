"""Sends a workload at a URL with bounded concurrency for a bounded time, recording every response."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from .workload import Phase, Workload

HIT_STATUSES = frozenset({"HIT", "STALE"})


@dataclass(frozen=True)
class Sample:
    at: float
    """Seconds since the run started, when the response finished."""
    latency: float
    status: int
    cache: str
    """X-Cache value (HIT, MISS, ...), or ERROR when the request failed."""
    edge: str
    size: int
    phase: Phase


@dataclass(frozen=True)
class PhasePlan:
    phase: Phase
    share: float
    """Fraction of the run spent in this phase."""


DEFAULT_PLAN = (
    PhasePlan(Phase.NORMAL, 0.5),
    PhasePlan(Phase.FLASH_SALE, 0.3),
    PhasePlan(Phase.CRAWLER, 0.2),
)


@dataclass
class RunResult:
    duration: float
    samples: list[Sample] = field(default_factory=list)


def phase_at(plan: tuple[PhasePlan, ...], fraction: float) -> Phase:
    total = sum(p.share for p in plan)
    edge = 0.0
    for part in plan:
        edge += part.share / total
        if fraction < edge:
            return part.phase
    return plan[-1].phase


async def run_load(
    url: str,
    workload: Workload,
    *,
    duration: float,
    concurrency: int = 16,
    plan: tuple[PhasePlan, ...] = DEFAULT_PLAN,
    timeout: float = 10.0,
    on_phase: Callable[[Phase], None] | None = None,
    max_requests: int | None = None,
) -> RunResult:
    """Run ``workload`` against ``url`` for ``duration`` seconds (or ``max_requests``), then stop."""
    base = url.rstrip("/")
    result = RunResult(duration=duration)
    started = time.monotonic()
    stop_at = started + duration
    issued = 0
    current = plan[0].phase
    if on_phase is not None:
        on_phase(current)

    def next_request() -> tuple[str, str, Phase] | None:
        nonlocal issued, current
        now = time.monotonic()
        if now >= stop_at or (max_requests is not None and issued >= max_requests):
            return None
        phase = phase_at(plan, (now - started) / duration)
        if phase is not current:
            current = phase
            if on_phase is not None:
                on_phase(phase)
        workload.phase = phase
        request = workload.next()
        issued += 1
        return request.path, request.accept, request.phase

    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout, auto_decompress=False) as session:

        async def worker() -> None:
            while (item := next_request()) is not None:
                path, accept, phase = item
                begin = time.monotonic()
                try:
                    async with session.get(base + path, headers={"Accept": accept}) as response:
                        body = await response.read()
                        sample = Sample(
                            at=time.monotonic() - started,
                            latency=time.monotonic() - begin,
                            status=response.status,
                            cache=response.headers.get("X-Cache", "NONE").split(",")[0].strip().upper(),
                            edge=response.headers.get("X-Edge", ""),
                            size=len(body),
                            phase=phase,
                        )
                except (aiohttp.ClientError, TimeoutError) as exc:
                    sample = Sample(
                        at=time.monotonic() - started,
                        latency=time.monotonic() - begin,
                        status=0,
                        cache="ERROR",
                        edge=type(exc).__name__,
                        size=0,
                        phase=phase,
                    )
                result.samples.append(sample)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.duration = time.monotonic() - started
    return result
