"""The one mapping from the node's error types to gRPC status codes.

Servicers and interceptors call ``status_for`` at the edge and answer with ``code: message``
(``errors.error_code`` / ``error_message``); nothing else leaks, and an error type not listed
here is INTERNAL — a bug, logged with its traceback. The first matching row wins, so subclasses
come before their bases.
"""

from __future__ import annotations

import grpc

from auth.errors import (
    AuthError,
    IssuerUnavailable,
    KeyNotValid,
    ManifestRejected,
    PermissionDenied,
    ProofInvalid,
    SignatureInvalid,
    TokenInvalid,
    UnknownKey,
    UnknownMember,
)
from exchange.errors import (
    ConfigError,
    EpochAhead,
    ExchangeError,
    HelloReplayed,
    InvalidEnvelope,
    InvalidEvent,
    InvalidHello,
    InvalidReport,
    InvalidStatisticsRequest,
    ListenError,
    MalformedRequest,
    MoveUnknown,
    NotAssigned,
    NotFound,
    NotYet,
    OutOfRange,
    Overloaded,
    QuotaExceeded,
    SequenceConflict,
    ShuttingDown,
    StorageUnavailable,
    TransferRefused,
    TransitionRefused,
    UnknownFields,
    WrongRecipient,
)
from routing.errors import InvalidUrl, RoutingError

_STATUS: list[tuple[type[Exception], grpc.StatusCode]] = [
    (TokenInvalid, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (IssuerUnavailable, grpc.StatusCode.UNAVAILABLE),  # an IdP is down: not the caller's fault
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
    (HelloReplayed, grpc.StatusCode.ALREADY_EXISTS),
    (InvalidHello, grpc.StatusCode.INVALID_ARGUMENT),
    (Overloaded, grpc.StatusCode.RESOURCE_EXHAUSTED),  # HelloFlood too
    (QuotaExceeded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (InvalidEnvelope, grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidReport, grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidEvent, grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidStatisticsRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (TransitionRefused, grpc.StatusCode.FAILED_PRECONDITION),
    (TransferRefused, grpc.StatusCode.FAILED_PRECONDITION),
    (MoveUnknown, grpc.StatusCode.FAILED_PRECONDITION),
    (NotAssigned, grpc.StatusCode.PERMISSION_DENIED),
    (InvalidUrl, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (StorageUnavailable, grpc.StatusCode.UNAVAILABLE),
    (ShuttingDown, grpc.StatusCode.UNAVAILABLE),  # the client retries on another replica
    (NotYet, grpc.StatusCode.UNAVAILABLE),
    (ListenError, grpc.StatusCode.UNAVAILABLE),
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
