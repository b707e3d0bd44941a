"""Range planning (RFC 9110 §14) on a stored 10-byte object, without sockets."""

from __future__ import annotations

import pytest
from edgefleet_edge.responses import plan_range
from edgefleet_edge.store import Entry


def stored(size: int = 10) -> Entry:
    return Entry(
        key="/a", variant="", path="/a", status=200, headers=[("ETag", '"v1"')], size=size, request_time=0.0,
        response_time=0.0, initial_age=0.0, lifetime=60.0, stale_while_revalidate=0.0, stale_if_error=0.0,
        must_revalidate=False, vary=(), surrogate_keys=(),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("header", "status", "ranges"),
    [
        ("bytes=0-3", 206, ((0, 3),)),
        ("bytes=5-", 206, ((5, 9),)),
        ("bytes=-4", 206, ((6, 9),)),
        ("bytes=8-20", 206, ((8, 9),)),
        ("bytes=0-1, 4-5", 206, ((0, 5),)),
        ("bytes=10-", 416, ()),
        ("bytes=12-15", 416, ()),
        ("bytes=10-, 11-12", 416, ()),
        ("bytes=3-1", 200, ()),
        ("bytes=+1-2", 200, ()),
        ("bytes=-", 200, ()),
        ("items=0-1", 200, ()),
    ],
    ids=[
        "first-bytes", "open-ended", "suffix", "past-the-end-clipped", "two-ranges", "open-ended-at-the-end",
        "wholly-past-the-end", "all-parts-unsatisfiable", "reversed", "sign", "no-positions", "other-unit",
    ],
)  # fmt: skip
def test_range_header_is_planned_as_rfc_9110_says(
    header: str, status: int, ranges: tuple[tuple[int, int], ...]
) -> None:
    plan = plan_range(header, None, stored())
    assert plan.status == status
    if status == 206:
        assert plan.ranges == ranges


def test_if_range_with_another_etag_sends_the_whole_object() -> None:
    assert plan_range("bytes=0-3", '"v0"', stored()).status == 200
    assert plan_range("bytes=0-3", '"v1"', stored()).status == 206
