"""The gRPC servicer law-enforcement partners call: pull their cases (with their lifecycle),
acknowledge them, record feedback on them, hold the notices to the hoster (evidence first).

The caller's identity is the verified token's subject (exchange/edge/access.py); a partner only
ever reaches its own cases (exchange/partners.py). A network reader's token (issuer
``ihx-member:…``, minted by another member for any subject it likes) is never a partner, whatever
its subject: its grant is read scopes only, and this refuses it once more where it matters.
Protobuf conversion is the codec's.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import grpc

from auth.errors import PermissionDenied
from auth.manifest.readers import NETWORK_ISSUER_PREFIX
from exchange.edge.access import current_principal
from exchange.edge.streams import abort
from exchange.errors import InvalidReport
from exchange.lifecycle.model import MAX_NOTE
from exchange.partners import Partners
from exchange.takedown.holds import Holds
from exchange.wire.case_codec import feedback_code_from_proto, partner_case_to_proto, text
from exchange.wire.codec import timestamp
from ihx.v1 import partner_pb2 as ppb
from ihx.v1 import partner_pb2_grpc as pgrpc

CASES_PER_MESSAGE = 100
MAX_ACK = 10_000


class PartnerServicer(pgrpc.PartnerServicer):
    def __init__(self, partners: Partners, holds: Holds) -> None:
        self._partners = partners
        self._holds = holds

    def _partner(self) -> str:
        principal = current_principal()
        subject = principal.subject
        if principal.issuer.startswith(NETWORK_ISSUER_PREFIX):
            raise PermissionDenied("a network reader's token is never a partner's")
        if subject not in self._partners.partners:
            raise PermissionDenied(f"{subject!r} is not a partner of this node")
        return subject

    def PullCases(
        self, request: ppb.PullCasesRequest, context: grpc.ServicerContext
    ) -> Iterator[ppb.PullCasesResponse]:
        try:
            partner = self._partner()
            after = parse_cursor(request.after_cursor)
            visibility = (
                timedelta(seconds=request.visibility_seconds)
                if request.visibility_seconds
                else None
            )
            page = self._partners.pull_page(partner, after, request.limit, visibility)
        except Exception as error:
            abort(context, error)
        until = timestamp(page.invisible_until)
        cases = page.cases
        for start in range(0, len(cases), CASES_PER_MESSAGE):
            chunk = cases[start : start + CASES_PER_MESSAGE]
            yield ppb.PullCasesResponse(
                cases=[partner_case_to_proto(v) for v in chunk], invisible_until=until
            )

    def AckCases(
        self, request: ppb.AckCasesRequest, context: grpc.ServicerContext
    ) -> ppb.AckCasesResponse:
        try:
            if len(request.case_ids) > MAX_ACK:
                raise InvalidReport("at most 10,000 case ids per call", code="ack-too-many")
            acked, unknown = self._partners.ack(self._partner(), list(request.case_ids))
        except Exception as error:
            abort(context, error)
        return ppb.AckCasesResponse(acknowledged=acked, unknown=unknown)

    def RecordFeedback(
        self, request: ppb.CaseFeedbackRequest, context: grpc.ServicerContext
    ) -> ppb.CaseFeedbackResponse:
        try:
            code = feedback_code_from_proto(request.code)
            note = text(request.note, "note", MAX_NOTE)
            at = self._partners.feedback(self._partner(), request.case_id, code, note)
        except Exception as error:
            abort(context, error)
        return ppb.CaseFeedbackResponse(recorded_at=timestamp(at))

    def HoldNotices(
        self, request: ppb.HoldNoticesRequest, context: grpc.ServicerContext
    ) -> ppb.HoldNoticesResponse:
        try:
            hold = self._holds.hold(
                request.case_id,
                self._partner(),
                timedelta(seconds=request.hold_seconds),
                request.reason,
                self._partners.assigned,
            )
        except Exception as error:
            abort(context, error)
        return ppb.HoldNoticesResponse(until=timestamp(hold.until))

    def ReleaseHold(
        self, request: ppb.ReleaseHoldRequest, context: grpc.ServicerContext
    ) -> ppb.ReleaseHoldResponse:
        try:
            n = self._holds.release(request.case_id, self._partner(), self._partners.assigned)
        except Exception as error:
            abort(context, error)
        return ppb.ReleaseHoldResponse(released=n)


def parse_cursor(text: str) -> int:
    """A pull cursor as this node hands it out (decimal digits); empty means the beginning."""
    if not text:
        return 0
    if not text.isdigit() or len(text) > 18:
        raise InvalidReport("after_cursor: not a cursor from this node", code="cursor-invalid")
    return int(text)
