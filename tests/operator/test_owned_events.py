"""Which events on owned objects call for putting them back: decided from the objects' managedFields, so that
the operator's own creations and changes (and the controllers maintaining them) never trigger a re-apply."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from edgefleet_operator.handlers import QuietSuccesses, edited_by_others


def fields(*entries: tuple[str, str, str | None]) -> Any:
    managed = []
    for manager, stamp, subresource in entries:
        operation = "Apply" if manager == "edgefleet-operator" else "Update"
        entry = {"manager": manager, "time": stamp, "operation": operation}
        if subresource:
            entry["subresource"] = subresource
        managed.append(entry)
    return {"managedFields": managed}


@pytest.mark.parametrize(
    ("meta", "edited"),
    [
        (fields(("edgefleet-operator", "2026-01-01T00:00:00Z", None)), False),
        (fields(("edgefleet-operator", "2026-01-01T00:00:00Z", None),
                ("kube-controller-manager", "2026-01-01T00:00:05Z", None),
                ("kube-controller-manager", "2026-01-01T00:00:06Z", "status")), False),
        (fields(("edgefleet-operator", "2026-01-01T00:00:00Z", None),
                ("kubectl", "2026-01-01T00:01:00Z", "scale")), True),
        (fields(("kubectl-edit", "2026-01-01T00:00:00Z", None),
                ("edgefleet-operator", "2026-01-01T00:01:00Z", None)), False),
        (fields(("kubectl-client-side-apply", "2026-01-01T00:00:00Z", None)), True),
    ],
    ids=["created-by-the-operator", "maintained-by-controllers", "scaled-by-hand-since",
         "hand-edit-already-put-back", "never-applied-by-the-operator"],
)  # fmt: skip
def test_only_changes_by_others_since_the_last_apply_are_hand_edits(meta: Any, edited: bool) -> None:
    assert edited_by_others(meta) is edited


@pytest.mark.parametrize(
    ("message", "kept"),
    [
        ("Timer 'drift' succeeded.", False),
        ("Handler 'owned-deployments' succeeded.", False),
        ("Handler 'purge-changed' succeeded.", False),
        ("Handler 'reconcile' succeeded.", True),
        ("Timer 'drift' failed temporarily: Secret shop-minio does not exist", True),
    ],
    ids=["drift-timer", "owned-event", "purge-event", "reconcile", "failure"],
)
def test_kopf_success_lines_for_timers_and_watch_events_are_dropped(message: str, kept: bool) -> None:
    record = logging.LogRecord("kopf.objects", logging.INFO, __file__, 1, message, None, None)
    assert QuietSuccesses().filter(record) is kept
