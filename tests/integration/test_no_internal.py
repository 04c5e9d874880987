"""No input reaches INTERNAL or UNKNOWN: property-based attacks on every RPC of a running node.

The attacker's side of the issue "Hostile members and overload". One real node (nl-eokm, alone
on loopback, ``hostile_target``) is sent, on every RPC of every service in ``proto/ihx/v1``:

* messages of the RPC's request type generated from its descriptor (``tests.fuzz.messages``):
  any subset of fields, integers at the 32/64-bit edges, huge and odd Unicode strings, huge
  bytes, undeclared enum numbers, nested and repeated messages; one message for a unary request,
  one to three for a request stream;
* raw random bytes through a generic multi-callable with identity serializers (what no stub
  would ever send: truncated varints, wrong wire types, lying lengths);
* for Exchange.Deliver and Exchange.Stream, envelopes *validly signed by de-eco's real key*,
  whose header fields (sequence, count, manifest_epoch, signed_at, kind, sender, recipient,
  key id, Merkle root) and payloads (valid reports and hash announcements with fuzzed fields
  merged over them, or raw bytes) the strategy decides — so the input passes the signature
  check and reaches the deep checks and the store.

Token-protected RPCs get a valid token of the scope their service needs, so the input reaches
the servicer rather than the interceptor. After every example the node must still serve:
GetNodeInfo answers, a known valid submission and a known valid envelope get their known
answers (``Target.still_serves``). Answers are never INTERNAL, UNKNOWN or a hang, and a refusal
always names its code.

Hypothesis runs derandomized (the same examples every run, no example database) with a
moderate number of examples, so the module takes well under 90 s on the project's 2 cores.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import pytest
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.wire.envelope import KIND_ANNOUNCEMENT, KIND_REPORT
from ihx.v1 import exchange_pb2 as xpb
from ihx.v1 import report_pb2 as pb
from tests.fuzz.messages import changes, messages
from tests.integration.hostile import FORBIDDEN, METHODS, Outcome, Target, request_class

pytestmark = pytest.mark.timeout(120)

ISSUE_RPCS = {
    "Cases.ListQueue",
    "Cases.GetCase",
    "Cases.Assess",
    "Cases.Act",
    "Cases.GetReportStatus",
    "Cases.Withdraw",
    "Cases.WatchCases",
    "Exchange.Stream",
    "Exchange.Deliver",
    "Exchange.GetNodeInfo",
    "Exchange.Hello",
    "Intake.SubmitReport",
    "Intake.SubmitReports",
    "Partner.PullCases",
    "Partner.AckCases",
    "Partner.RecordFeedback",
    "Partner.HoldNotices",
    "Partner.ReleaseHold",
    "RoutingLog.ListRoutingLog",
    "RoutingLog.GetCheckpoint",
    "Statistics.GetStatistics",
}


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def judged(target: Target, rpc: str, messages_: list[bytes]) -> Outcome:
    """Send, require a deliberate answer, require the node to keep serving; return the answer."""
    outcome = target.call(rpc, messages_)
    assert outcome.code not in FORBIDDEN, f"{rpc}: {outcome}"
    if outcome.code is not grpc.StatusCode.OK:
        assert outcome.details, f"{rpc}: refused without a reason: {outcome}"
    target.still_serves()
    return outcome


def test_every_rpc_of_the_protos_is_attacked() -> None:
    """The method table is read from the descriptors: a new RPC joins these tests by itself."""
    assert set(METHODS) == ISSUE_RPCS


def _requests(rpc: str) -> st.SearchStrategy[list[bytes]]:
    method = METHODS[rpc]
    one = messages(request_class(method)).map(lambda m: m.SerializeToString())
    return (
        st.lists(one, min_size=1, max_size=3) if method.client_streaming else one.map(lambda b: [b])
    )


def _raw(rpc: str) -> st.SearchStrategy[list[bytes]]:
    one = st.binary(max_size=512)
    if METHODS[rpc].client_streaming:
        return st.lists(one, min_size=1, max_size=3)
    return one.map(lambda b: [b])


@pytest.mark.parametrize("rpc", sorted(ISSUE_RPCS))
def test_generated_requests_get_a_deliberate_answer(hostile_target: Target, rpc: str) -> None:
    @fuzz(35)
    @given(_requests(rpc))
    def attack(requests: list[bytes]) -> None:
        judged(hostile_target, rpc, requests)

    attack()


@pytest.mark.parametrize("rpc", sorted(ISSUE_RPCS))
def test_raw_bytes_get_a_deliberate_answer(hostile_target: Target, rpc: str) -> None:
    @fuzz(35)
    @given(_raw(rpc))
    def attack(requests: list[bytes]) -> None:
        judged(hostile_target, rpc, requests)

    attack()


# -- signed envelopes: past the signature, into the deep checks and the store ---------------------


@dataclass(frozen=True)
class Payload:
    """A valid report or announcement with ``changes`` merged over it, or ``raw`` bytes."""

    kind: int
    changes: Message | None = None
    raw: bytes | None = None


@dataclass(frozen=True)
class Recipe:
    header: xpb.EnvelopeHeader  # fields set here replace the valid header's
    payloads: tuple[Payload, ...]


_payloads = st.one_of(
    changes(pb.Report).map(lambda m: Payload(KIND_REPORT, m)),
    changes(xpb.HashAnnouncement).map(lambda m: Payload(KIND_ANNOUNCEMENT, m)),
    st.binary(max_size=256).map(lambda b: Payload(KIND_REPORT, raw=b)),
    st.just(Payload(KIND_REPORT, pb.Report())),  # unchanged: a valid report
)
_recipes = st.builds(
    Recipe,
    # Mostly one header field changed, so the change is what the node judges.
    st.one_of(
        st.just(xpb.EnvelopeHeader()),
        changes(xpb.EnvelopeHeader, at_most=1, depth=1),
        changes(xpb.EnvelopeHeader, at_most=1, depth=1),
        changes(xpb.EnvelopeHeader, at_most=2, depth=1),
    ),
    st.lists(_payloads, min_size=1, max_size=3).map(tuple),
)


def _bytes(target: Target, p: Payload) -> bytes:
    if p.raw is not None:
        return p.raw
    base: Message
    if p.kind == KIND_ANNOUNCEMENT:
        base = xpb.HashAnnouncement.FromString(target.announcement())
    else:
        base = pb.Report.FromString(target.report())
    assert p.changes is not None
    for field, _ in p.changes.ListFields():
        base.ClearField(field.name)
    base.MergeFrom(p.changes)
    return base.SerializeToString()


def signed_envelope(target: Target, recipe: Recipe) -> bytes:
    payloads = [_bytes(target, p) for p in recipe.payloads]
    kind = recipe.payloads[0].kind if recipe.payloads else KIND_REPORT
    header = target.header(payloads, kind)
    for field, _ in recipe.header.ListFields():
        header.ClearField(field.name)
    header.MergeFrom(recipe.header)
    return target.envelope(payloads, header).SerializeToString()


@pytest.mark.parametrize("rpc", ["Exchange.Deliver", "Exchange.Stream"])
def test_signed_hostile_envelopes_get_a_deliberate_answer(hostile_target: Target, rpc: str) -> None:
    @fuzz(150)
    @given(st.lists(_recipes, min_size=1, max_size=3 if rpc == "Exchange.Stream" else 1))
    def attack(recipes: list[Recipe]) -> None:
        envelopes = [signed_envelope(hostile_target, r) for r in recipes]
        outcome = judged(hostile_target, rpc, envelopes)
        for answer in outcome.responses:
            body = xpb.ReceiptBody.FromString(xpb.SignedReceipt.FromString(answer).body)
            for result in body.outcomes:
                if result.outcome == xpb.OUTCOME_REJECTED:
                    assert result.reason, f"{rpc}: a payload rejected without a reason"

    attack()


def test_an_unchanged_recipe_is_accepted(hostile_target: Target) -> None:
    """The control: with nothing fuzzed, the recipe's envelope is a valid one, stored."""
    recipe = Recipe(xpb.EnvelopeHeader(), (Payload(KIND_REPORT, pb.Report()),))
    outcome = judged(hostile_target, "Exchange.Deliver", [signed_envelope(hostile_target, recipe)])
    assert outcome.code is grpc.StatusCode.OK, outcome
    body = xpb.ReceiptBody.FromString(xpb.SignedReceipt.FromString(outcome.responses[0]).body)
    assert [r.outcome for r in body.outcomes] == [xpb.OUTCOME_NEW_CASE]
