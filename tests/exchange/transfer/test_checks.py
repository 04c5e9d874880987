"""What the new holder (us-ncmec) verifies of a transfer, each refusal named — no database.

The default kit is a sound transfer: nl-eokm's report, decided to de-eco and delivered to it in
an envelope nl-eokm signed, moved by de-eco to the US. Each test breaks one thing the checks
must catch, or shows what passes (a report the holder made itself needs no other evidence).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from auth.manifest import Manifest
from exchange.domain import Classification
from exchange.errors import ExchangeError
from exchange.lifecycle.model import Action, ActionKind, Assessment
from exchange.time_window import TimeWindow
from exchange.transfer.checks import Verified, verify_transfer
from exchange.wire.transfer_codec import ReceivedTransfer
from ihx.v1 import report_pb2 as pb
from tests.exchange.factories import T0, host_in, signing_key
from tests.exchange.transfer.factories import HOLDER, NEW, ORIGIN, Kit, make_kit, origin_envelope

SKEW = timedelta(minutes=15)


def verify(
    manifest: Manifest,
    t: ReceivedTransfer,
    *,
    sender: str = HOLDER,
    self_member: str = NEW,
    locate: Callable[[Sequence[str]], str | None] | None = None,
) -> Verified:
    window = TimeWindow.for_signer(manifest.member(sender).joined_at, T0 + timedelta(hours=1), SKEW)
    return verify_transfer(
        t,
        sender=sender,
        self_member=self_member,
        manifest=manifest,
        window=window,
        max_skew=SKEW,
        locate=locate,
    )


def refused(manifest: Manifest, t: ReceivedTransfer, **kwargs: object) -> str:
    with pytest.raises(ExchangeError) as info:
        verify(manifest, t, **kwargs)  # type: ignore[arg-type]
    return f"{info.value.code}: {info.value.message}"


def test_a_sound_transfer_passes_with_the_moved_items(manifest: Manifest) -> None:
    kit = make_kit()
    v = verify(manifest, kit.transfer())
    assert v.report.id == kit.report.id
    assert (v.items, v.country, v.orphaned, v.geo) == ((0, 1), "US", False, None)


def test_a_report_the_holder_made_itself_needs_no_other_evidence(manifest: Manifest) -> None:
    kit = make_kit(origin=HOLDER)
    assert kit.origin is None
    assert verify(manifest, kit.transfer()).report.origin_member == HOLDER
    # … and evidence of some envelope beside it is refused: nothing the schema does not mean.
    other = origin_envelope(kit.wire, sender=HOLDER, recipient=NEW)
    assert refused(manifest, kit.transfer(origin=other)).startswith("transfer-invalid: ")


def _with_report(kit: Kit, change: Callable[[pb.Report], None]) -> Kit:
    """The kit with its report's bytes changed as the origin could sign them (the id its
    contents imply stays the same); the origin's evidence, if any, over the new bytes."""
    msg = pb.Report.FromString(kit.wire)
    change(msg)
    wire = msg.SerializeToString(deterministic=True)
    evidence = None if kit.origin is None else origin_envelope(wire)
    return replace(kit, wire=wire, origin=evidence)


def _received_in_1990(msg: pb.Report) -> None:
    msg.received_at.FromDatetime(datetime(1990, 1, 1))


def _decided_under_a_future_epoch(msg: pb.Report) -> None:
    msg.decision.manifest_epoch = 99


def _traced_to_a_private_address(msg: pb.Report) -> None:
    msg.trace.addresses.add(address="10.0.0.1", country="US")


def _traced_in_2300(msg: pb.Report) -> None:
    msg.trace.traced_at.FromDatetime(datetime(2300, 1, 1))


def _control_character_in_the_host(msg: pb.Report) -> None:
    msg.trace.host = "evil\x1b[31m.example"


# name → (how the report changes, the refusal's code): what a report sent straight to the
# receiver would be refused for, it is refused for when it comes by a move too.
UNSOUND_REPORTS: dict[str, tuple[Callable[[pb.Report], None], str]] = {
    "received before the network": (_received_in_1990, "report-time-range"),
    "decided under a manifest epoch not yet published": (
        _decided_under_a_future_epoch,
        "decision-epoch",
    ),
    "traced to a private address": (_traced_to_a_private_address, "report-trace"),
    "traced in 2300": (_traced_in_2300, "report-trace"),
    "a control character in the traced host": (_control_character_in_the_host, "report-trace"),
}


@pytest.mark.parametrize("origin", [HOLDER, ORIGIN])
@pytest.mark.parametrize("name", list(UNSOUND_REPORTS))
def test_a_moved_report_passes_the_checks_a_direct_report_gets(
    manifest: Manifest, name: str, origin: str
) -> None:
    change, code = UNSOUND_REPORTS[name]
    kit = _with_report(make_kit(origin=origin), change)
    reason = refused(manifest, kit.transfer())
    assert reason.startswith(f"{code}: "), reason


def test_a_move_the_receiver_serves_by_an_orphan_rule_is_orphaned(manifest: Manifest) -> None:
    kit = make_kit(country="JP")  # JP has no member: the orphan rule gives it to us-ncmec
    assert verify(manifest, kit.transfer()).orphaned is True


def _tampered(kit: Kit) -> bytes:
    msg = pb.Report.FromString(kit.wire)
    msg.notes = "words the origin never signed"
    return msg.SerializeToString(deterministic=True)


# name → (the transfer from the default kit, the refusal's code)
BROKEN: dict[str, tuple[Callable[[Kit], ReceivedTransfer], str]] = {
    "a move made by another member than the signer": (
        lambda k: k.transfer(k.moved(member=ORIGIN)),
        "origin-mismatch",
    ),
    "a move whose id its contents do not imply": (
        lambda k: k.transfer(replace(k.moved(), id=k.moved(sequence=3).id)),
        "event-id-mismatch",
    ),
    "not a move": (
        lambda k: k.transfer(replace(k.moved(), body=Action(ActionKind.REMOVED))),
        "transfer-invalid",
    ),
    "a move dated after the envelope": (
        lambda k: k.transfer(k.moved(at=T0 + timedelta(days=2))),
        "event-time-range",
    ),
    "a move naming another member": (
        lambda k: k.transfer(
            k.moved(body=Action(ActionKind.MOVED, moved_to_country="US", moved_to_member=ORIGIN))
        ),
        "not-responsible",
    ),
    "a country the receiver does not serve": (
        lambda k: k.transfer(
            k.moved(body=Action(ActionKind.MOVED, moved_to_country="NL", moved_to_member=NEW))
        ),
        "not-responsible",
    ),
    "a report decided to another member": (
        lambda k: make_kit(holder="ro-safernet").transfer(k.moved()),
        "not-holder",
    ),
    "a report changed after its origin signed it": (
        lambda k: k.transfer(report=_tampered(k)),
        "origin-evidence",
    ),
    "no evidence of the origin": (lambda k: k.transfer(origin=None), "origin-evidence"),
    "the origin's envelope to another member": (
        lambda k: k.transfer(origin=origin_envelope(k.wire, recipient="ro-safernet")),
        "origin-evidence",
    ),
    "an envelope signed by another key than the origin's": (
        lambda k: k.transfer(
            origin=replace(k.evidence, signature=signing_key(HOLDER).sign(k.evidence.header))
        ),
        "origin-evidence",
    ),
    "a proof of another leaf": (
        lambda k: k.transfer(origin=replace(k.evidence, leaf_index=0)),
        "origin-evidence",
    ),
    "a malformed origin header": (
        lambda k: k.transfer(origin=replace(k.evidence, header=b"\xff\x00")),
        "origin-evidence",
    ),
    "an item the report does not have": (
        lambda k: k.transfer(k.moved(items=(replace(k.refs(0)[0], index=5),))),
        "transfer-items",
    ),
    "an item of another report": (
        lambda k: k.transfer(k.moved(items=make_kit(hashes=["elsewhere"]).refs(0))),
        "transfer-items",
    ),
    "an item with a classification its origin did not give": (
        lambda k: k.transfer(
            k.moved(items=(replace(k.refs(0)[0], origin_classification=Classification.NATIONAL),))
        ),
        "transfer-items",
    ),
    "history made by another member": (
        lambda k: k.transfer(history=(replace(k.assessed(), member=ORIGIN),)),
        "transfer-history",
    ),
    "history after the move in the case's order": (
        lambda k: k.transfer(history=(k.assessed(sequence=3),)),
        "transfer-history",
    ),
    "history of another case": (
        lambda k: k.transfer(history=(replace(k.assessed(), case_id="c-" + "0" * 32),)),
        "transfer-history",
    ),
    "history naming another report's items": (
        lambda k: k.transfer(
            history=(replace(k.assessed(), items=make_kit(hashes=["elsewhere"]).refs(0)),)
        ),
        "transfer-history",
    ),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_broken_transfer_is_refused_naming_why(manifest: Manifest, name: str) -> None:
    build, code = BROKEN[name]
    reason = refused(manifest, build(make_kit()))
    assert reason.startswith(f"{code}: "), reason


def test_the_receiver_places_the_holders_trace_itself(manifest: Manifest) -> None:
    kit = make_kit()
    trace = pb.Trace(
        host=host_in("DE"),
        addresses=[pb.TracedAddress(address="8.8.8.8", country="US")],
        country="US",
    )
    agreed = verify(manifest, kit.transfer(trace=trace), locate=lambda _: "US")
    assert agreed.geo is not None
    assert (agreed.geo.country, agreed.geo.agrees) == ("US", True)
    disputed = verify(manifest, kit.transfer(trace=trace), locate=lambda _: "DE")
    assert disputed.geo is not None
    assert (disputed.geo.country, disputed.geo.agrees, disputed.geo.reroute_to) == (
        "DE",
        False,
        HOLDER,
    )
    other_host = kit.transfer(trace=pb.Trace(host="elsewhere.example"))
    assert refused(manifest, other_host).startswith("transfer-trace: ")
    private = pb.Trace(host=host_in("DE"), addresses=[pb.TracedAddress(address="10.0.0.1")])
    assert refused(manifest, kit.transfer(trace=private)).startswith("transfer-trace: ")


def test_an_assessment_in_the_history_is_the_holders_not_the_receivers(
    manifest: Manifest,
) -> None:
    # The history rides along as the holder's words; nothing of it is checked against rules.
    kit = make_kit()
    national = replace(kit.assessed(), body=Assessment(Classification.NATIONAL))
    assert verify(manifest, kit.transfer(history=(national,))).transfer.history == (national,)
