"""Remembering the origin's own writes, so bucket notifications echoing them are not published twice."""

from __future__ import annotations

from edgefleet_origin.recent_writes import RecentWrites


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_echo_matches_once_on_key_and_etag() -> None:
    recent = RecentWrites(clock=FakeClock())
    recent.remember("a.jpg", "e1")
    assert not recent.is_echo("a.jpg", "e2")
    assert recent.is_echo("a.jpg", '"e1"')
    assert not recent.is_echo("a.jpg", "e1")


def test_delete_echo_has_no_etag() -> None:
    recent = RecentWrites(clock=FakeClock())
    recent.remember("a.jpg", None)
    assert not recent.is_echo("b.jpg", None)
    assert recent.is_echo("a.jpg", None)


def test_old_writes_are_not_echoes() -> None:
    clock = FakeClock()
    recent = RecentWrites(ttl=10, clock=clock)
    recent.remember("a.jpg", "e1")
    clock.now = 11
    assert not recent.is_echo("a.jpg", "e1")


def test_memory_is_bounded() -> None:
    recent = RecentWrites(capacity=2, clock=FakeClock())
    for key in ("a", "b", "c"):
        recent.remember(key, "e")
    assert not recent.is_echo("a", "e")
    assert recent.is_echo("b", "e") and recent.is_echo("c", "e")
