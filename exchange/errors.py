"""Error types of the node, and their single mapping to gRPC status codes.

Errors are types: ``ExchangeError`` and its children here, plus the error roots of ``routing``
and ``auth`` (which cannot import this package). ``status_for`` is the one place that turns any of
them into a gRPC status code; servicers call it at the edge and never leak a traceback.
"""

from __future__ import annotations

import grpc

from auth.errors import (
    AuthError,
    KeyNotValid,
    ManifestRejected,
    PermissionDenied,
    ProofInvalid,
    SignatureInvalid,
    TokenInvalid,
    UnknownKey,
    UnknownMember,
)
from common.errors import IhxError
from routing.errors import InvalidUrl, RoutingError


class ExchangeError(IhxError):
    """Base of the node's errors. ``code`` is stable and machine-readable."""

    code = "exchange-error"


class InvalidReport(ExchangeError):
    """A report or one of its parts fails validation."""

    code = "invalid-report"


class InvalidEnvelope(ExchangeError):
    """An envelope is malformed, over a limit, or inconsistent with its signed header."""

    code = "invalid-envelope"


class WrongRecipient(ExchangeError):
    code = "wrong-recipient"


class SequenceConflict(ExchangeError):
    """A sequence number reused with different content."""

    code = "sequence-conflict"


class ConfigError(ExchangeError):
    """Settings or node files are missing or malformed; the message names the field or file."""

    code = "config"


class NotFound(ExchangeError):
    code = "not-found"


class MalformedRequest(ExchangeError):
    """A request message is not valid protobuf for its method: nothing of it was read."""

    code = "request-malformed"


class UnknownFields(ExchangeError):
    """A message carries fields its schema does not define: ihx stores and serves only known bytes.

    Unknown fields could carry anything — media included — past every check of the known ones,
    so they are refused wherever bytes come in, never skipped.
    """

    code = "unknown-field"


class OutOfRange(ExchangeError):
    """An integer (sequence, index, size, limit) outside the range the node can represent."""

    code = "out-of-range"


class EpochAhead(ExchangeError):
    """A peer signed under a manifest newer than any this node holds: retry once it has it."""

    code = "manifest-epoch-ahead"


class Overloaded(ExchangeError):
    """A caller holds its share of streams or workers already: nothing was started for it."""

    code = "overloaded"


class StorageUnavailable(ExchangeError):
    """The database refused the write (disk full, read-only, locked): nothing was stored."""

    code = "storage-unavailable"


_STATUS: list[tuple[type[Exception], grpc.StatusCode]] = [
    (TokenInvalid, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (WrongRecipient, grpc.StatusCode.FAILED_PRECONDITION),
    (SequenceConflict, grpc.StatusCode.ALREADY_EXISTS),
    (UnknownMember, grpc.StatusCode.PERMISSION_DENIED),  # from auth: one type for both
    (UnknownKey, grpc.StatusCode.PERMISSION_DENIED),
    (KeyNotValid, grpc.StatusCode.PERMISSION_DENIED),
    (SignatureInvalid, grpc.StatusCode.UNAUTHENTICATED),
    (ProofInvalid, grpc.StatusCode.INVALID_ARGUMENT),
    (ManifestRejected, grpc.StatusCode.FAILED_PRECONDITION),
    (MalformedRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (UnknownFields, grpc.StatusCode.INVALID_ARGUMENT),
    (OutOfRange, grpc.StatusCode.OUT_OF_RANGE),
    (EpochAhead, grpc.StatusCode.FAILED_PRECONDITION),
    (Overloaded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (InvalidEnvelope, grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidReport, grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidUrl, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (StorageUnavailable, grpc.StatusCode.UNAVAILABLE),
    (ConfigError, grpc.StatusCode.FAILED_PRECONDITION),
    (AuthError, grpc.StatusCode.PERMISSION_DENIED),
    (RoutingError, grpc.StatusCode.INVALID_ARGUMENT),
    (ExchangeError, grpc.StatusCode.INTERNAL),
]


def status_for(error: Exception) -> grpc.StatusCode:
    """The gRPC status for an error; unknown exceptions are INTERNAL."""
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return grpc.StatusCode.INTERNAL


def error_code(error: Exception) -> str:
    code = getattr(error, "code", None)
    return code if isinstance(code, str) else "internal"


def error_message(error: Exception) -> str:
    """A one-line message safe to show a caller (no traceback, no internals)."""
    if isinstance(error, ExchangeError | AuthError | RoutingError):
        return error.message
    return "internal error"
