"""The one error base class of ihx.

Every error the project raises on purpose carries a stable machine ``code`` (used in logs,
receipts and gRPC details) and a human message that names what was wrong. Routing, auth and
exchange each root their own hierarchy (``RoutingError``, ``AuthError``, ``ExchangeError``) on
``IhxError``, so the behaviour — a class-level default code, overridable per instance, and a
``message`` that falls back to the code — is written once. The exchange edge maps these types to
gRPC status codes in one table.
"""

from __future__ import annotations

__all__ = ["IhxError"]


class IhxError(Exception):
    """Base of all ihx errors. ``code`` is stable and machine-readable."""

    code = "ihx-error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code
