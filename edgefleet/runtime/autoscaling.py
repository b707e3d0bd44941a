"""The local runtime's autoscaler: the same decision function as the operator, acting on processes."""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

from edgefleet.autoscale.decision import Decision, PastDecision, Sample, decide
from edgefleet.autoscale.sources import DirectScrapeSource, MetricsSource, MetricsUnavailable, PrometheusSource

from .fleet import LocalFleet
from .plan import LocalPlan
from .prometheus import LocalPrometheus
from .state import Tokens

logger = logging.getLogger(__name__)


class LocalAutoscaler:
    def __init__(self, plan: LocalPlan, fleet: LocalFleet, tokens: Tokens, prometheus: LocalPrometheus | None) -> None:
        self.plan = plan
        self.fleet = fleet
        self.source: MetricsSource
        if prometheus is not None:
            self.source = PrometheusSource(prometheus.url, window="10s")
        else:
            self.source = DirectScrapeSource(
                lambda: [f"{edge.admin_url}/metrics" for edge in fleet.edge_states()], tokens.admin
            )
        horizon = max(plan.scaling.scale_down_window, plan.scaling.scale_up_window, 60.0)
        self.samples: deque[Sample] = deque(maxlen=max(10, int(horizon / max(plan.autoscale_interval, 0.5)) + 5))
        self.history: list[PastDecision] = []
        self.last_metrics: dict[str, Any] = {}
        self.last_change: dict[str, Any] | None = None
        self.last_decision: Decision | None = None
        self.healthy = True
        self.reason = ""

    async def tick(self) -> bool:
        """Observe, decide, act. True when the set of edges changed."""
        try:
            sample = await self.source.sample()
        except MetricsUnavailable as exc:
            self.healthy, self.reason = False, str(exc)
            logger.warning("Autoscaler holding the fleet: %s", exc)
            return False
        self.healthy, self.reason = True, ""
        self.samples.append(sample)
        self.last_metrics = sample.as_dict()
        now = time.time()
        current = self.fleet.edge_count
        decision = decide(current, self.plan.scaling, list(self.samples), self.history, now)
        if decision.bottleneck == "origin" and (self.last_decision is None or self.last_decision.bottleneck is None):
            logger.warning("Holding the edges: %s", decision.reason.removeprefix("holding: "))
        self.last_decision = decision
        if decision.replicas == current:
            return False
        logger.info("Scaling edges from %d to %d: %s", current, decision.replicas, decision.reason)
        await self.fleet.scale_to(decision.replicas)
        self.history.append(PastDecision(now, current, decision.replicas, tuple(s.at for s in decision.samples)))
        self.last_change = {"at": now, "from": current, "to": decision.replicas, "reason": decision.reason,
                            "metrics": sample.as_dict()}  # fmt: skip
        return True
