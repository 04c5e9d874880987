"""Server-side sessions of ``ihx web``: the browser holds a random id, never the token.

A person logs in by pasting a JWT; the verified ``Principal`` and its CSRF secret stay here, in
memory, keyed by a ``secrets.token_urlsafe`` id that is the only thing the cookie carries. A
stolen page, a script or a log line never sees the token. A session ends at the earliest of the
token's own expiry and ``[web] session_lifetime_s``, at logout, or when the store is full and it
is the oldest (memory is bounded: ``max_sessions``). Restarting the process logs everyone out —
acceptable for a read-only view, and it means nothing about sessions is ever written to disk.

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

MAX_SESSION_ID = 128  # longer cookie values are refused before any lookup


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
    ) -> None:
        self._clock = clock
        self._lifetime = lifetime
        self._max = max_sessions
        self._new_id = new_id
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def open(self, principal: Principal) -> Session:
        """A new session for ``principal``, ending no later than its token does."""
        now = self._clock()
        ends = min(principal.expires_at, now + self._lifetime)
        session = Session(self._new_id(), principal, self._new_id(), ends)
        with self._lock:
            self._sessions[session.id] = session
            while len(self._sessions) > self._max:
                self._sessions.popitem(last=False)
        return session

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

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)


def same_secret(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a submitted CSRF token with the expected one."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())
