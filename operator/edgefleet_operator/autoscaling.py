"""The autoscaler's kopf timer: one per CdnCluster with autoscaling on.

Not wired yet: scaling decisions are made by ``edgefleet.autoscale.decide`` (used by ``edgefleet up``);
the in-cluster timer that feeds it from Prometheus and writes the scale subresource is issue #7's work.
"""

from __future__ import annotations

from typing import Any


def register(registry: Any, runtime: Any) -> None:
    """Registers nothing yet (see the module docstring)."""
