"""PartnerServicer over real partners and a real database: pull, ack, and the refusals.

The caller is set as the access interceptor sets it; the context records an abort as gRPC's
would. The servicer only maps requests and answers: the queue behaviour itself is
tests/exchange/test_partners.py's.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine

from auth.manifest import Manifest
from exchange.domain import Classification
from exchange.edge.partner_service import PartnerServicer, parse_cursor
from exchange.errors import InvalidReport
from exchange.intake import Intake
from exchange.partners import PartnerRule, Partners
from exchange.store.writer import Writer
from exchange.takedown.holds import Holds
from ihx.v1 import partner_pb2 as ppb
from tests.exchange.edge.servicer_context import Aborted, AbortingContext, calling_as
from tests.exchange.factories import FakeClock, make_submission, url_in


@pytest.fixture
def partners(writer: Writer, manifest: Manifest, clock: FakeClock) -> Partners:
    rule = PartnerRule("nl-police", frozenset({"NL"}), frozenset({Classification.BASELINE}))
    return Partners(
        self_member="nl-eokm",
        rules=[rule],
        visibility_timeout=timedelta(minutes=5),
        writer=writer,
        manifest=lambda: manifest,
        clock=clock,
    )


@pytest.fixture
def servicer(
    partners: Partners,
    tracer: Any,
    manifest: Manifest,
    writer: Writer,
    engine: Engine,
    clock: FakeClock,
) -> PartnerServicer:
    intake = Intake(
        self_member="nl-eokm",
        tracer=tracer,
        manifest=lambda: manifest,
        writer=writer,
        clock=clock,
        wake=lambda _: None,
        on_cases=partners.assign,
    )
    for i in range(3):
        intake.submit(make_submission(url_in("NL", f"/{i}.jpg"), hashes=[f"h{i}"]))
    holds = Holds(writer=writer, engine=engine, clock=clock, self_member="nl-eokm")
    return PartnerServicer(partners, holds)


def pull(servicer: PartnerServicer, **fields: Any) -> list[ppb.Case]:
    responses = servicer.PullCases(ppb.PullCasesRequest(**fields), AbortingContext())
    return [case for response in responses for case in response.cases]


def test_a_partner_pulls_its_cases_and_acknowledges_them(servicer: PartnerServicer) -> None:
    with calling_as("nl-police"):
        cases = pull(servicer, limit=10)
        assert len(cases) == 3
        assert all(c.hosting_country == "NL" and c.reporting_members == ["nl-eokm"] for c in cases)
        assert [int(c.cursor) for c in cases] == sorted(int(c.cursor) for c in cases)
        acked = servicer.AckCases(
            ppb.AckCasesRequest(case_ids=[cases[0].id, "c-unknown"]),
            AbortingContext(),
        )
        assert (acked.acknowledged, list(acked.unknown)) == (1, ["c-unknown"])
        after = pull(servicer, after_cursor=cases[0].cursor, limit=10)
    assert after == []  # the others are invisible for the timeout; the first is acknowledged


def test_a_caller_that_is_not_a_partner_is_refused(servicer: PartnerServicer) -> None:
    with calling_as("europol"), pytest.raises(Aborted) as caught:
        pull(servicer)
    assert caught.value.code is grpc.StatusCode.PERMISSION_DENIED


def test_a_network_readers_token_never_acts_as_a_partner(servicer: PartnerServicer) -> None:
    # Whatever sub a reader's node mints, and even if a grant ever let cases:pull through.
    with calling_as("nl-police", issuer="ihx-member:be-child-focus"), pytest.raises(Aborted) as c:
        pull(servicer)
    assert c.value.code is grpc.StatusCode.PERMISSION_DENIED
    assert "network reader" in c.value.details


def test_a_cursor_not_from_this_node_is_refused(servicer: PartnerServicer) -> None:
    with calling_as("nl-police"), pytest.raises(Aborted) as caught:
        pull(servicer, after_cursor="-1")
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "cursor-invalid" in caught.value.details


def test_too_many_ids_in_one_ack_are_refused(servicer: PartnerServicer) -> None:
    request = ppb.AckCasesRequest(case_ids=[f"c-{i}" for i in range(10_001)])
    with calling_as("nl-police"), pytest.raises(Aborted) as caught:
        servicer.AckCases(request, AbortingContext())
    assert "ack-too-many" in caught.value.details


@pytest.mark.parametrize(
    ("text", "cursor"), [("", 0), ("0", 0), ("42", 42), ("9" * 18, int("9" * 18))]
)
def test_cursors_parse(text: str, cursor: int) -> None:
    assert parse_cursor(text) == cursor


@pytest.mark.parametrize("text", ["x", "-1", "1.5", "9" * 19, " 1"])
def test_malformed_cursors_are_refused(text: str) -> None:
    with pytest.raises(InvalidReport):
        parse_cursor(text)
