"""The one-screen status of a local fleet (pure: state in, text out)."""

from __future__ import annotations

import math
import time

from .state import RuntimeState


def _num(value: float | None, fmt: str, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:{fmt}}{unit}"


def render_status(state: RuntimeState, now: float | None = None) -> str:
    now = time.time() if now is None else now
    metrics = state.metrics
    lines = [
        f"edgefleet {state.cluster}   balancer {state.balancer_url}   origin {state.origin_url}",
        f"hit ratio {_num(metrics.get('hit_ratio'), '.3f')}   p95 {_num(metrics.get('p95_latency_ms'), '.1f', ' ms')}"
        f"   requests {_num(metrics.get('requests_per_second'), '.1f', '/s per edge')}"
        f"   origin {_num(metrics.get('origin_requests_per_second'), '.1f', '/s')}",
        "",
        f"{'EDGE':<24}{'STATE':<12}{'BALANCER':<14}{'PID':<10}{'RESTARTS':<10}URL",
    ]
    for edge in state.edges:
        lines.append(
            f"{edge.name:<24}{edge.state:<12}{edge.balancer or '-':<14}{edge.pid or '-'!s:<10}{edge.restarts:<10}"
            f"{edge.url}"
        )
    decision = state.last_decision
    lines.append("")
    if decision:
        age = now - float(decision.get("at", now))
        change = f"{decision.get('from')} -> {decision.get('to')} edges"
        lines.append(f"last scaling: {change}, {age:.0f}s ago: {decision.get('reason')}")
    else:
        lines.append("last scaling: none yet")
    if state.console_url:
        lines.append(f"console: {state.console_url}")
    for deviation in state.deviations:
        lines.append(f"note: {deviation}")
    return "\n".join(lines)
