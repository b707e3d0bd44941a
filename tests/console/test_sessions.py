"""Sign-in, sessions, CSRF and the sign-in throttle, on a fake clock."""

from __future__ import annotations

from edgefleet.console.sessions import SessionStore, SignInThrottle, csrf_matches

TOKEN = "a-console-token-of-enough-length"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_right_token_opens_a_session_with_its_own_csrf_token() -> None:
    store = SessionStore()
    session = store.sign_in(TOKEN, TOKEN)
    assert session is not None
    assert TOKEN not in (session.sid, session.csrf), "the session holds random values, never the token"
    assert store.get(session.sid) is session
    assert csrf_matches(session, session.csrf)
    other = store.sign_in(TOKEN, TOKEN)
    assert other is not None and other.csrf != session.csrf


def test_wrong_or_empty_token_opens_nothing() -> None:
    store = SessionStore()
    assert store.sign_in("nope", TOKEN) is None
    assert store.sign_in("", TOKEN) is None
    assert store.sign_in(TOKEN[:-1], TOKEN) is None
    assert len(store) == 0


def test_csrf_token_must_match_exactly() -> None:
    session = SessionStore().sign_in(TOKEN, TOKEN)
    assert session is not None
    for presented in (None, "", session.csrf[:-1], session.sid):
        assert not csrf_matches(session, presented)


def test_session_ends_after_idle_time_and_after_its_lifetime() -> None:
    clock = Clock()
    store = SessionStore(lifetime=100.0, idle=30.0, clock=clock)
    idle = store.sign_in(TOKEN, TOKEN)
    busy = store.sign_in(TOKEN, TOKEN)
    assert idle is not None and busy is not None
    for _ in range(4):
        clock.now += 25
        assert store.get(busy.sid) is busy
    assert store.get(idle.sid) is None, "idle for more than 30 s"
    clock.now += 25
    assert store.get(busy.sid) is None, "more than 100 s after sign-in"


def test_sign_out_ends_the_session() -> None:
    store = SessionStore()
    session = store.sign_in(TOKEN, TOKEN)
    assert session is not None
    store.end(session.sid)
    assert store.get(session.sid) is None


def test_session_count_is_bounded() -> None:
    store = SessionStore(max_sessions=3)
    for _ in range(10):
        store.sign_in(TOKEN, TOKEN)
    assert len(store) == 3


def test_throttle_refuses_after_ten_failures_per_minute_per_address() -> None:
    clock = Clock()
    throttle = SignInThrottle(attempts=10, window=60.0, clock=clock)
    for _ in range(10):
        assert throttle.allowed("10.0.0.1")
        throttle.failed("10.0.0.1")
    assert not throttle.allowed("10.0.0.1")
    assert throttle.allowed("10.0.0.2"), "other addresses are not affected"
    clock.now += 61
    assert throttle.allowed("10.0.0.1")
