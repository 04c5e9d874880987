"""Server-side sessions of ``ihx web``: the browser holds a random id, never the token.

A person logs in by pasting a JWT; the verified ``Principal`` and its CSRF secret stay here, in
memory, keyed by a ``secrets.token_urlsafe`` id that is the only thing the cookie carries. A
stolen page, a script or a log line never sees the token. A session ends at the earliest of the
token's own expiry and ``[web] session_lifetime_s``, at logout, or at a new login from the same
browser. Memory is bounded without letting one token holder log others out: a principal (issuer,
subject) holds at most ``per_principal`` sessions (a new one ends that principal's own oldest), and
when the store holds ``max_sessions`` the expired ones go first, then new logins are refused
(``Overloaded``, 503) — another person's live session is never evicted. Restarting the process
logs everyone out — acceptable for a read-only view; nothing about sessions is written to disk.

Pure: the clock and the id source are parameters; a lock makes it safe under uvicorn's threads.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from auth.tokens import Principal
from common.clock import Clock
from exchange.errors import Overloaded

MAX_SESSION_ID = 128  # longer cookie values are refused before any lookup
PER_PRINCIPAL = 8  # one person's browsers and tabs; more ends their own oldest session


@dataclass(frozen=True, slots=True)
class Session:
    """One logged-in person: who the token proved, until when, and the session's CSRF secret."""

    id: str
    principal: Principal
    csrf: str
    expires_at: datetime


def new_id() -> str:
    return secrets.token_urlsafe(32)


class SessionStore:
    """Sessions by id, oldest first; bounded, expiring, thread-safe."""

    def __init__(
        self,
        *,
        clock: Clock,
        lifetime: timedelta,
        max_sessions: int,
        new_id: Callable[[], str] = new_id,
        per_principal: int = PER_PRINCIPAL,
    ) -> None:
        self._clock = clock
        self._lifetime = lifetime
        self._max = max_sessions
        self._per = per_principal
        self._new_id = new_id
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def open(self, principal: Principal) -> Session:
        """A new session for ``principal``, ending no later than its token does."""
        now = self._clock()
        ends = min(principal.expires_at, now + self._lifetime)
        session = Session(self._new_id(), principal, self._new_id(), ends)
        who = _who(principal)
        with self._lock:
            own = [k for k, v in self._sessions.items() if _who(v.principal) == who]
            for stale in own[: max(0, len(own) - self._per + 1)]:
                del self._sessions[stale]  # the principal's own oldest, never anyone else's
            if len(self._sessions) >= self._max:
                self._drop_expired(now)
            if len(self._sessions) >= self._max:
                raise Overloaded("too many people are logged in; try again later")
            self._sessions[session.id] = session
        return session

    def _drop_expired(self, now: datetime) -> None:
        for key in [k for k, v in self._sessions.items() if v.expires_at <= now]:
            del self._sessions[key]

    def get(self, session_id: str | None) -> Session | None:
        """The live session of ``session_id``; None when unknown, forged or expired."""
        if not session_id or len(session_id) > MAX_SESSION_ID:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if session.expires_at <= self._clock():
                del self._sessions[session_id]
                return None
            return session

    def close(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def close_issuer(self, issuer: str) -> int:
        """End every session of tokens from ``issuer`` (its keys changed); how many ended."""
        with self._lock:
            ended = [k for k, v in self._sessions.items() if v.principal.issuer == issuer]
            for key in ended:
                del self._sessions[key]
            return len(ended)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)


def _who(principal: Principal) -> tuple[str, str]:
    return (principal.issuer, principal.subject)


def same_secret(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a submitted CSRF token with the expected one."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())
