"""The web view's own error types (the rest are the node's and ``auth``'s): each maps to one
HTTP answer in ``status.py``."""

from __future__ import annotations

from exchange.errors import ExchangeError


class LoginRequired(ExchangeError):
    """No session, an unknown (forged) session id, or one that expired: log in again."""

    code = "login-required"


class CsrfRefused(ExchangeError):
    """A POST without the CSRF token of its session (or of its login form)."""

    code = "csrf-refused"


class BadQuery(ExchangeError):
    """A query parameter out of its form or range; the message names it."""

    code = "bad-query"
