"""A hostile member and hostile clients against one running node, every RPC reached generically.

The target is nl-eokm, the only node started (the other members exist in the manifest, so their
keys are real). The attacker holds de-eco's real signing key — a valid signature proves who sent
an envelope, never that its content is sane (DESIGN.md, "Trust between members") — and tokens
of nl-eokm's own issuer with the scope each service needs (the partner token's subject is the
partner ``nl-police``), so that fuzzed input gets past authentication to the servicer.

Every RPC is called through ``grpc`` generic multi-callables with identity serializers: the
request is bytes on the wire, whatever they are, and the method table comes from the service
descriptors of ``proto/ihx/v1`` (``METHODS``), not from a hand-written list.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import grpc
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from auth import merkle
from auth.tokens import Scope
from exchange.domain import Classification
from exchange.lifecycle.model import Assessment, CaseEvent, EventKind, ItemRef, event_id_for
from exchange.wire.case_codec import event_to_bytes
from exchange.wire.codec import submission_to_proto, timestamp
from exchange.wire.envelope import KIND_REPORT
from ihx.v1 import (
    cases_pb2,
    exchange_pb2,
    intake_pb2,
    partner_pb2,
    routing_log_pb2,
    statistics_pb2,
)
from ihx.v1 import exchange_pb2 as xpb
from tests.exchange.factories import (
    announcement_bytes,
    make_announcement,
    make_report,
    make_submission,
    report_wire,
    url_in,
)
from tests.integration.partner_cluster import NL_POLICE
from tests.integration.support import DE, NL, Cluster

METHODS: dict[str, MethodDescriptor] = {
    f"{service.name}.{method.name}": method
    for module in (
        cases_pb2,
        exchange_pb2,
        intake_pb2,
        partner_pb2,
        routing_log_pb2,
        statistics_pb2,
    )
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
}
"""Every RPC of every service in proto/ihx/v1, as ``Service.Method``."""

LONG_LIVED = frozenset({"Cases.WatchCases"})
"""Server streams that stay open until the client leaves: judged on their first message."""

SCOPES: dict[str, Scope] = {
    "Cases": Scope.CASES_WORK,
    "Intake": Scope.REPORTS_SUBMIT,
    "Partner": Scope.CASES_PULL,
    "RoutingLog": Scope.LOG_READ,
    "Statistics": Scope.STATS_READ,
}
"""The scope a token needs per service; Exchange needs none (envelopes are signed)."""

FORBIDDEN = frozenset(
    {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED}
)
"""Never an answer to input: a crash (INTERNAL, or UNKNOWN from an exception that escaped a
servicer) or a hang (no answer within the call's 30 s)."""


def request_class(method: MethodDescriptor) -> type[Message]:
    return GetMessageClass(method.input_type)


@dataclass
class Outcome:
    code: grpc.StatusCode
    details: str
    responses: list[bytes]

    def __str__(self) -> str:
        return f"{self.code.name} {self.details!r}"


class Target:
    """nl-eokm as seen from outside: generic calls, de-eco's key, tokens, liveness checks."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.channel = grpc.insecure_channel(
            cluster.address(NL),
            options=[
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ],
        )
        self.tokens = {
            service: cluster.fed.token(NL, scope, subject=NL_POLICE)
            for service, scope in SCOPES.items()
        }
        self.key = cluster.fed.keys[DE]
        self.sequences = itertools.count(1_000_000)
        self.serial = itertools.count()
        info = self.unary(METHODS["Exchange.GetNodeInfo"], xpb.NodeInfoRequest())
        self.epoch = int(xpb.NodeInfo.FromString(info.responses[0]).manifest_epoch)
        self.alive_submission = submission_to_proto(
            make_submission(url_in("NL", "/hostile/alive.jpg"), hashes=["hostile-alive"])
        ).SerializeToString()
        self.alive_envelope = self.envelope([self.report()]).SerializeToString()
        first = self.call("Intake.SubmitReport", [self.alive_submission])
        assert first.code is grpc.StatusCode.OK, first
        first = self.call("Exchange.Deliver", [self.alive_envelope])
        assert first.code is grpc.StatusCode.OK, first
        self.alive_receipt = first.responses[0]

    def close(self) -> None:
        self.channel.close()

    # -- calls ---------------------------------------------------------------------------------

    def call(self, name: str, messages: Sequence[bytes], *, timeout: float = 30) -> Outcome:
        """Send ``messages`` (one for a unary request) to ``Service.Method``, with its token."""
        method = METHODS[name]
        path = f"/{method.containing_service.full_name}/{method.name}"
        service = method.containing_service.name
        metadata = (
            (("authorization", f"Bearer {self.tokens[service]}"),) if service in SCOPES else ()
        )
        kinds = {
            (False, False): self.channel.unary_unary,
            (False, True): self.channel.unary_stream,
            (True, False): self.channel.stream_unary,
            (True, True): self.channel.stream_stream,
        }
        streaming = (method.client_streaming, method.server_streaming)
        multi: Any = kinds[streaming](path, request_serializer=None, response_deserializer=None)
        request: Any = iter(messages) if method.client_streaming else messages[0]
        responses: list[bytes] = []
        try:
            answer = multi(request, timeout=timeout, metadata=metadata)
            if name in LONG_LIVED:
                # A watch stays open by design: its first message (or refusal) is the answer.
                responses.append(next(answer))
                answer.cancel()
            elif method.server_streaming:
                responses.extend(answer)
            else:
                responses.append(answer)
        except grpc.RpcError as error:
            call = cast(grpc.Call, error)
            return Outcome(call.code(), call.details() or "", responses)
        return Outcome(grpc.StatusCode.OK, "", responses)

    def unary(self, method: MethodDescriptor, request: Message) -> Outcome:
        return self.call(
            f"{method.containing_service.name}.{method.name}", [request.SerializeToString()]
        )

    # -- de-eco's envelopes to nl-eokm ---------------------------------------------------------

    def report(self) -> bytes:
        """A fresh valid report payload from de-eco for an NL-hosted URL (a new case)."""
        i = next(self.serial)
        return report_wire(
            make_report(
                origin=DE,
                decision_member=NL,
                url=url_in("NL", f"/hostile/{i}.jpg"),
                hashes=[f"hostile-{i}"],
                received_at=datetime.now(UTC),
            )
        )

    def announcement(self) -> bytes:
        """A fresh valid hash announcement of de-eco's own first sighting."""
        i = next(self.serial)
        return announcement_bytes(
            make_announcement(f"hostile-announced-{i}", member=DE, first_seen=datetime.now(UTC))
        )

    def event(self) -> bytes:
        """A fresh well-formed case event of de-eco's (an assessment of one of its cases)."""
        i = next(self.serial)
        case_id = "c-" + f"{i:032x}"
        now = datetime.now(UTC)
        return event_to_bytes(
            CaseEvent(
                id=event_id_for(DE, case_id, 1),
                case_id=case_id,
                member=DE,
                sequence=1,
                at=now,
                items=(ItemRef("r-" + f"{i:032x}", 0, DE, Classification.BASELINE, now),),
                kind=EventKind.ASSESSMENT,
                body=Assessment(Classification.BASELINE),
            )
        )

    def header(self, payloads: Sequence[bytes], kind: int = KIND_REPORT) -> xpb.EnvelopeHeader:
        """The header a correct de-eco would sign for ``payloads``: every field valid."""
        return xpb.EnvelopeHeader(
            sender=DE,
            recipient=NL,
            sequence=next(self.sequences),
            signed_at=timestamp(datetime.now(UTC)),
            count=len(payloads),
            merkle_root=merkle.root(list(payloads)),
            kind=kind,
            key_id=self.key.key_id,
            manifest_epoch=self.epoch,
        )

    def envelope(
        self, payloads: Sequence[bytes], header: xpb.EnvelopeHeader | None = None
    ) -> xpb.Envelope:
        """``payloads`` under ``header`` (a valid one by default), validly signed by de-eco."""
        head = (header or self.header(payloads)).SerializeToString()
        return xpb.Envelope(header=head, signature=self.key.sign(head), payloads=list(payloads))

    # -- liveness ------------------------------------------------------------------------------

    def still_serves(self) -> None:
        """GetNodeInfo answers; the known submission and envelope get their known answers."""
        info = self.call("Exchange.GetNodeInfo", [b""], timeout=10)
        assert info.code is grpc.StatusCode.OK, f"GetNodeInfo: {info}"
        assert xpb.NodeInfo.FromString(info.responses[0]).member == NL
        submitted = self.call("Intake.SubmitReport", [self.alive_submission], timeout=30)
        assert submitted.code is grpc.StatusCode.OK, f"a valid submission: {submitted}"
        replayed = self.call("Exchange.Deliver", [self.alive_envelope], timeout=30)
        assert replayed.code is grpc.StatusCode.OK, f"a valid envelope: {replayed}"
        assert replayed.responses == [self.alive_receipt]
