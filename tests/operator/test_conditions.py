"""Status conditions: merged by type, transition times kept while a status holds, others' conditions kept."""

from __future__ import annotations

import pytest
from edgefleet_operator.status import Replicas, condition, fleet_conditions, merge_conditions

from edgefleet.api.cdncluster import Condition


def by_type(conditions: list[Condition]) -> dict[str, Condition]:
    return {c.type: c for c in conditions}


def test_conditions_merge_keeps_the_autoscalers_condition() -> None:
    autoscaler = condition("AutoscalerHealthy", True, "Scraping", "ok", 1).model_copy(
        update={"last_transition_time": "2026-01-01T00:00:00Z"}
    )
    merged = merge_conditions([autoscaler], fleet_conditions({}, 3, None))
    assert by_type(merged)["AutoscalerHealthy"] == autoscaler
    assert [c.type for c in merged] == ["Ready", "Progressing", "Degraded", "AutoscalerHealthy"]


def test_conditions_merge_keeps_transition_time_while_status_holds() -> None:
    earlier = merge_conditions([], fleet_conditions({}, 1, None), now="2026-01-01T00:00:00Z")
    merged = by_type(merge_conditions(earlier, fleet_conditions({}, 2, "Secret x missing"), now="2026-01-02T00:00:00Z"))
    assert merged["Progressing"].last_transition_time == "2026-01-01T00:00:00Z", "False before and after"
    assert merged["Ready"].last_transition_time == "2026-01-02T00:00:00Z"
    assert merged["Ready"].observed_generation == 2


@pytest.mark.parametrize(
    ("components", "problem", "ready", "progressing", "degraded"),
    [
        ({"edge": Replicas(2, 2, 2)}, None, "True", "False", "False"),
        ({"edge": Replicas(3, 3, 1)}, None, "False", "True", "False"),
        ({"edge": Replicas(2, 2, 2)}, "Secret shop-minio referenced by spec.origin.storage.s3 does not exist",
         "False", "False", "True"),
    ],
    ids=["all-ready", "rolling-out", "bad-reference"],
)  # fmt: skip
def test_fleet_conditions_follow_components_and_problems(
    components: dict[str, Replicas], problem: str | None, ready: str, progressing: str, degraded: str
) -> None:
    conditions = by_type(fleet_conditions(components, 1, problem))
    assert (conditions["Ready"].status, conditions["Progressing"].status, conditions["Degraded"].status) == (
        ready, progressing, degraded,
    )  # fmt: skip
    if problem:
        assert conditions["Degraded"].message == problem


def test_a_recomputed_status_merges_into_the_conditions_read_last_and_keeps_the_bus_epoch() -> None:
    from edgefleet_operator.cluster_status import with_conditions

    from edgefleet.api.cdncluster import CdnClusterStatus

    computed = CdnClusterStatus(observed_generation=2)
    before = computed.model_copy(deep=True)
    updates = fleet_conditions({"edge": Replicas(2, 2, 2)}, 2, None)
    autoscaler = condition("AutoscalerHealthy", False, "MetricsUnavailable", "no Prometheus", 2).model_copy(
        update={"last_transition_time": "2026-01-01T00:00:00Z"}
    )
    first = with_conditions(computed, updates, {"status": {}}, ("epoch-1", False))
    # After a conflict: the same computed status, merged into what another writer wrote meanwhile.
    stored = {"metadata": {"generation": 2},
              "status": {"conditions": [autoscaler.model_dump(by_alias=True, mode="json")]}}  # fmt: skip
    again = with_conditions(computed, updates, stored, ("epoch-1", False))
    assert computed == before, "the computed status is left as it was, for the next attempt"
    assert [c.type for c in first.conditions or []] == ["Ready", "Progressing", "Degraded", "PurgeBusHistoryLost"]
    assert by_type(again.conditions or [])["AutoscalerHealthy"] == autoscaler
    assert again.purge_bus_epoch == "epoch-1"
    assert by_type(again.conditions or [])["PurgeBusHistoryLost"].status == "False"
