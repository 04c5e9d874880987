"""Who is asking: the session cookie → the server-side session → the token's principal.

Login takes a pasted JWT, verified as the node's gRPC edge verifies bearer tokens (the shared
``token_policy``: the node's own issuer by the manifest's keys, and ``[auth] jwks``; rebuilt when
the manifest's epoch changes, ``trust``), and refuses one that
grants none of the view's scopes. The cookie carries only the session id: HttpOnly, SameSite=
Strict, Path=/, and it lives no longer than the session. When the view is served over HTTPS
(``[web] secure_cookies``: TLS here or at a TLS-terminating proxy) the cookies are Secure and
carry the ``__Host-`` (session) and ``__Secure-`` (login form) prefixes, so no plain-HTTP page or
sibling domain can set or overwrite them.

CSRF: every POST carries a token checked here. Logout's is the session's own secret; login has
no session yet, so the login form uses a double-submit token — a random value in a short-lived
cookie of its own and in the form, which must match (SameSite=Strict keeps other sites from
sending either).

Which scope each page needs (``admin`` implies every scope):
``log:read`` the network overview and the routing log; ``stats:read`` statistics, charts, the
hoster scorecard and exports; ``cases:work`` the queues and case pages. A case's URL is shown
only to ``admin``.
"""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import Response

from auth.errors import PermissionDenied
from auth.tokens import Scope, require
from common.clock import Clock
from exchange.errors import Overloaded
from exchange.web.errors import CsrfRefused, LoginRequired
from exchange.web.limits import RateLimit
from exchange.web.sessions import MAX_SESSION_ID, Session, SessionStore, same_secret
from exchange.web.trust import Trust

SESSION_COOKIE = "ihx_session"
LOGIN_COOKIE = "ihx_login"
SECURE_SESSION_COOKIE = "__Host-ihx_session"  # Secure, Path=/, no Domain: the browser enforces
SECURE_LOGIN_COOKIE = "__Secure-ihx_login"  # Path=/login, so __Host- cannot apply
LOGIN_COOKIE_S = 900  # the login form's CSRF token: fill the form within 15 minutes
WEB_SCOPES = (Scope.LOG_READ, Scope.STATS_READ, Scope.CASES_WORK, Scope.ADMIN)
URL_SCOPE = Scope.ADMIN  # who may read a case's URL
# Logins per client address: a person mistyping is fine, a script opening sessions is not.
LOGIN_BURST = 20
LOGIN_EVERY_S = 3.0
# Logins from every address together: a bound even when addresses are many (or forwarded) —
# the burst at once, then the burst again over a minute.
LOGIN_TOTAL_BURST = 200
LOGIN_TOTAL_WINDOW_S = 60.0
_EVERYONE = "*"


class Gate:
    def __init__(
        self,
        verifier: Trust,
        sessions: SessionStore,
        *,
        clock: Clock,
        secure: bool,
        login_burst: int = LOGIN_BURST,
        login_total_burst: int = LOGIN_TOTAL_BURST,
    ) -> None:
        self._verifier = verifier
        self._clock = clock
        self.sessions = sessions
        self.secure = secure
        self.logins = RateLimit(clock, burst=login_burst, every_s=LOGIN_EVERY_S)
        self.all_logins = RateLimit(
            clock, burst=login_total_burst, every_s=LOGIN_TOTAL_WINDOW_S / login_total_burst
        )

    def start(self) -> None:
        """Start what verifying tokens keeps running (fetched issuers' workers)."""
        self._verifier.start()

    def close(self) -> None:
        """Stop it again."""
        self._verifier.close()

    @property
    def session_cookie(self) -> str:
        return SECURE_SESSION_COOKIE if self.secure else SESSION_COOKIE

    @property
    def login_cookie(self) -> str:
        return SECURE_LOGIN_COOKIE if self.secure else LOGIN_COOKIE

    # -- reading a request ------------------------------------------------------------------

    def session(self, request: Request) -> Session:
        self._verifier.check()  # a newer manifest may end sessions
        session = self.sessions.get(request.cookies.get(self.session_cookie))
        if session is None:
            raise LoginRequired("log in with a token")
        return session

    def optional(self, request: Request) -> Session | None:
        self._verifier.check()
        return self.sessions.get(request.cookies.get(self.session_cookie))

    def require(self, request: Request, scope: Scope) -> Session:
        session = self.session(request)
        require(session.principal, scope)
        return session

    # -- logging in and out -------------------------------------------------------------------

    def login(self, token: str, request: Request) -> Session:
        """A session for a valid token granting at least one of the view's scopes.

        Rate-limited per client address (the peer's, or the one a trusted proxy forwarded:
        ``[web] trusted_proxies``) and over all addresses together; the browser's previous
        session (its cookie) ends first.
        """
        client = request.client.host if request.client else "-"
        if not self.logins.allow(client):
            raise Overloaded("too many logins from this address; wait a minute and try again")
        if not self.all_logins.allow(_EVERYONE):
            raise Overloaded("too many logins at once; wait a minute and try again")
        principal = self._verifier.verify(token.strip())
        if not any(principal.has(s) for s in WEB_SCOPES):
            raise PermissionDenied(
                "the token grants none of " + ", ".join(s.value for s in WEB_SCOPES)
            )
        previous = request.cookies.get(self.session_cookie)
        if previous and len(previous) <= MAX_SESSION_ID:
            self.sessions.close(previous)
        return self.sessions.open(principal)

    def logout(self, request: Request, csrf: str | None) -> None:
        session = self.session(request)
        check_csrf(csrf, session.csrf)
        self.sessions.close(session.id)

    # -- cookies ---------------------------------------------------------------------------------

    def set_session(self, response: Response, session: Session) -> None:
        max_age = max(1, int((session.expires_at - self._clock()).total_seconds()))
        response.set_cookie(
            self.session_cookie,
            session.id,
            max_age=max_age,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="strict",
        )
        response.delete_cookie(self.login_cookie, path="/login", secure=self.secure)

    def clear_session(self, response: Response) -> None:
        response.delete_cookie(
            self.session_cookie, path="/", secure=self.secure, httponly=True, samesite="strict"
        )

    def login_token(self, request: Request) -> str:
        """The login form's CSRF token: the one its cookie holds, else a new one."""
        given = request.cookies.get(self.login_cookie, "")
        return given if 20 <= len(given) <= 64 else secrets.token_urlsafe(32)

    def set_login_token(self, response: Response, value: str) -> None:
        response.set_cookie(
            self.login_cookie,
            value,
            max_age=LOGIN_COOKIE_S,
            path="/login",
            secure=self.secure,
            httponly=True,
            samesite="strict",
        )

    def check_login_csrf(self, request: Request, given: str | None) -> None:
        check_csrf(given, request.cookies.get(self.login_cookie) or "")


def check_csrf(given: str | None, expected: str) -> None:
    if not expected or not same_secret(given, expected):
        raise CsrfRefused("the form's CSRF token is missing or wrong: reload the page")
