"""Access control for every RPC, in one gRPC server interceptor.

Each method needs one scope (``METHOD_SCOPES``); the caller presents ``authorization: Bearer
<JWT>`` and the interceptor verifies it (auth/tokens.py) before the servicer runs. Node-to-node
exchange methods are authenticated by their Ed25519 signatures (and mTLS in production), health
and reflection are open; any other method is denied — deny by default, so a new RPC cannot ship
unprotected. The verified principal reaches the servicer through a context variable; a failure
is answered with the code of the one table (edge/status.py: UNAUTHENTICATED, PERMISSION_DENIED,
or UNAVAILABLE while an external issuer's keys cannot be fetched) and a short reason, and counted.

With an ``Admission`` (exchange/admission.py), a verified caller also holds one of its subject's
``calls_per_subject`` slots for the life of the call: one token cannot take a whole service's
budget. A subject is counted with its issuer (``caller_key``): every issuer names its own
subjects, so a network reader minting ``sub=nl-police`` cannot use up the real partner's slots.
Over its share, the call is refused with RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import contextvars
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol, TypeAlias

import grpc

from auth.errors import AuthError, PermissionDenied, TokenInvalid
from auth.tokens import Principal, Scope, require
from exchange.edge.admission import Admission, classify, held, refusal
from exchange.edge.status import status_for
from exchange.errors import Overloaded
from exchange.ops.metrics import Metrics

log = logging.getLogger(__name__)

METHOD_SCOPES: dict[str, Scope] = {
    "/ihx.v1.Intake/SubmitReport": Scope.REPORTS_SUBMIT,
    "/ihx.v1.Intake/SubmitReports": Scope.REPORTS_SUBMIT,
    "/ihx.v1.Partner/PullCases": Scope.CASES_PULL,
    "/ihx.v1.Partner/AckCases": Scope.CASES_PULL,
    "/ihx.v1.Partner/RecordFeedback": Scope.CASES_PULL,
    "/ihx.v1.Partner/HoldNotices": Scope.CASES_PULL,
    "/ihx.v1.Partner/ReleaseHold": Scope.CASES_PULL,
    "/ihx.v1.RoutingLog/ListRoutingLog": Scope.LOG_READ,
    "/ihx.v1.RoutingLog/GetCheckpoint": Scope.LOG_READ,
    "/ihx.v1.Cases/ListQueue": Scope.CASES_WORK,
    "/ihx.v1.Cases/GetCase": Scope.CASES_WORK,
    "/ihx.v1.Cases/Assess": Scope.CASES_WORK,
    "/ihx.v1.Cases/Act": Scope.CASES_WORK,
    "/ihx.v1.Cases/GetReportStatus": Scope.CASES_WORK,
    "/ihx.v1.Cases/Withdraw": Scope.CASES_WORK,
    "/ihx.v1.Cases/WatchCases": Scope.CASES_WORK,
    "/ihx.v1.Statistics/GetStatistics": Scope.STATS_READ,
}
OPEN_PREFIXES = (
    "/ihx.v1.Exchange/",  # authenticated by envelope signatures, not tokens
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)

# Only the stubs make RpcMethodHandler generic, so the alias is a string for the checker alone.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"

_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "ihx_principal", default=None
)


def current_principal() -> Principal:
    principal = _principal.get()
    if principal is None:  # only reachable if a servicer is mounted without the interceptor
        raise PermissionDenied("no authenticated caller")
    return principal


def _bearer(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


class Verifier(Protocol):
    """A token verifier: ``TokenVerifier``, or the node's ``ManifestVerifier`` that follows the
    manifest."""

    def verify(self, token: str) -> Principal: ...


class AccessInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    def __init__(
        self,
        verifier: Verifier,
        metrics: Metrics | None = None,
        admission: Admission | None = None,
    ) -> None:
        self._verifier = verifier
        self._metrics = metrics
        self._admission = admission
        self.failures: Counter[str] = Counter()

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        method: str = details.method
        handler = continuation(details)
        if handler is None or method.startswith(OPEN_PREFIXES):
            return handler
        scope = METHOD_SCOPES.get(method)
        try:
            if scope is None:
                raise PermissionDenied("method is not open to tokens")
            token = _bearer(details.invocation_metadata)
            if token is None:
                raise TokenInvalid("missing bearer token", code="token-missing")
            principal = self._verifier.verify(token)
            require(principal, scope)
        except AuthError as error:
            self.failures[error.code] += 1
            if self._metrics is not None:
                self._metrics.token_failures.labels(error.code).inc()
            status = status_for(error)
            log.info("access refused for %s: %s", method, error.code)
            return _refusal(handler, status, f"{error.code}: {error}")
        admission = self._admission
        if admission is not None:
            subject, kind = caller_key(principal), classify(method)
            try:
                admission.check_subject(subject, kind)
            except Overloaded as error:
                log.info("refused %s for %s: %s", method, subject, error)
                return refusal(handler, error)
            handler = held(handler, lambda _peer, _cancel: admission.acquire_subject(subject, kind))
        return _with_principal(handler, principal)


def caller_key(principal: Principal) -> str:
    """Whom admission counts a call against: the subject *of its issuer*.

    A subject has no space (auth/tokens SUBJECT_PATTERN), so the key is unambiguous."""
    return f"{principal.issuer} {principal.subject}"


def _refusal(handler: Handler, status: grpc.StatusCode, message: str) -> Handler:
    def deny(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(status, message)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(deny)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(deny)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(deny)
    return grpc.unary_unary_rpc_method_handler(deny)


def _with_principal(handler: Handler, principal: Principal) -> Handler:
    def wrap(behavior: Callable[..., Any] | None) -> Callable[..., Any]:
        assert behavior is not None

        def run(request: Any, context: grpc.ServicerContext) -> Any:
            token = _principal.set(principal)
            try:
                return behavior(request, context)
            finally:
                _principal.reset(token)

        return run

    def wrap_stream(behavior: Callable[..., Any] | None) -> Callable[..., Any]:
        assert behavior is not None

        # A streaming response is a generator run lazily: set the principal around each step.
        def run(request: Any, context: grpc.ServicerContext) -> Any:
            iterator = iter(behavior(request, context))
            while True:
                token = _principal.set(principal)
                try:
                    item = next(iterator)
                except StopIteration:
                    return
                finally:
                    _principal.reset(token)
                yield item

        return run

    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(wrap_stream(handler.stream_stream), **kwargs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(wrap(handler.stream_unary), **kwargs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(wrap_stream(handler.unary_stream), **kwargs)
    return grpc.unary_unary_rpc_method_handler(wrap(handler.unary_unary), **kwargs)
