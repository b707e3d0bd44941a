"""Sign-in and CSRF: pure bookkeeping over an injected clock, no HTTP.

A session is a random id held in an HttpOnly, SameSite=Strict cookie; the console token itself is only
ever compared (in constant time) and never stored in a session, a cookie, a URL or a log. Each session has
its own CSRF token, which pages carry in a ``<meta>`` element and scripts send back in ``X-CSRF-Token``.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

SESSION_COOKIE = "edgefleet_console"
LOGIN_COOKIE = "edgefleet_console_login"
"""Double-submit cookie guarding the sign-in form itself (login CSRF)."""
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"


def same_secret(presented: str, expected: str) -> bool:
    """Constant-time comparison, so timing does not reveal how much of a guess was right."""
    return hmac.compare_digest(presented.encode(), expected.encode())


@dataclass
class Session:
    sid: str
    csrf: str
    created: float
    last_seen: float


@dataclass
class SessionStore:
    lifetime: float = 8 * 3600.0
    """A session ends this long after sign-in, however active."""
    idle: float = 3600.0
    """... or after this long without a request."""
    max_sessions: int = 1000
    clock: Callable[[], float] = time.monotonic
    _sessions: dict[str, Session] = field(default_factory=dict)

    def sign_in(self, presented: str, expected: str) -> Session | None:
        """A new session when ``presented`` is the console token, else None."""
        if not presented or not same_secret(presented, expected):
            return None
        self._expire()
        if len(self._sessions) >= self.max_sessions:
            oldest = min(self._sessions.values(), key=lambda s: s.last_seen)
            del self._sessions[oldest.sid]
        now = self.clock()
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now)
        self._sessions[session.sid] = session
        return session

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        session = self._sessions.get(sid)
        if session is None:
            return None
        now = self.clock()
        if now - session.created > self.lifetime or now - session.last_seen > self.idle:
            del self._sessions[sid]
            return None
        session.last_seen = now
        return session

    def end(self, sid: str) -> None:
        self._sessions.pop(sid, None)

    def _expire(self) -> None:
        now = self.clock()
        for sid, s in list(self._sessions.items()):
            if now - s.created > self.lifetime or now - s.last_seen > self.idle:
                del self._sessions[sid]

    def __len__(self) -> int:
        return len(self._sessions)


def csrf_matches(session: Session, presented: str | None) -> bool:
    return bool(presented) and same_secret(presented or "", session.csrf)


@dataclass
class SignInThrottle:
    """At most ``attempts`` failed sign-ins per client address in ``window`` seconds."""

    attempts: int = 10
    window: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, list[float]] = field(default_factory=dict)

    def allowed(self, client: str) -> bool:
        now = self.clock()
        recent = [t for t in self._failures.get(client, []) if now - t < self.window]
        if recent:
            self._failures[client] = recent
        else:
            self._failures.pop(client, None)
        return len(recent) < self.attempts

    def failed(self, client: str) -> None:
        self._failures.setdefault(client, []).append(self.clock())
        if len(self._failures) > 10_000:  # bound the memory a spray of addresses can use
            self._failures.clear()
