"""gRPC servicers for the node's outside users: law-enforcement pull and the routing log.

The caller's identity is the verified token's subject (exchange/access.py); a partner only ever
reaches its own cases. Protobuf conversion for cases and log entries lives here, at the edge.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

import grpc
from sqlalchemy import Engine, select

from auth.errors import PermissionDenied
from exchange.checkpoints import Checkpoint
from exchange.edge.access import current_principal
from exchange.edge.streams import abort
from exchange.errors import InvalidReport, NotFound
from exchange.partners import CaseView, Partners
from exchange.routing_log import LogEntry
from exchange.store import schema
from exchange.store.log_query import LogFilter, index_in_range, list_entries
from exchange.wire.codec import from_timestamp, timestamp
from ihx.v1 import exchange_pb2 as xpb
from ihx.v1 import partner_pb2 as ppb
from ihx.v1 import partner_pb2_grpc as pgrpc
from ihx.v1 import routing_log_pb2 as lpb
from ihx.v1 import routing_log_pb2_grpc as lgrpc


def case_to_proto(view: CaseView) -> ppb.Case:
    msg = ppb.Case(
        id=view.id,
        cursor=str(view.cursor),
        url=view.url,
        hosting_country=view.hosting_country or "",
        reporting_members=list(view.reporting_members),
        opened_at=timestamp(view.opened_at),
    )
    started = view.takedown_clock_started
    if started is not None:
        msg.takedown_clock_started.CopyFrom(timestamp(started))
    for part in view.reports:
        item = msg.reports.add(
            reporting_member=part.reporting_member, receipt_verified=part.receipt_verified
        )
        # Stored bytes were validated on the way in: parse them straight into the answer.
        item.report.MergeFromString(part.wire)
        if part.receipt_body is not None and part.receipt_signature is not None:
            item.receipt.CopyFrom(
                xpb.SignedReceipt(body=part.receipt_body, signature=part.receipt_signature)
            )
    return msg


def entry_to_proto(e: LogEntry) -> lpb.LogEntry:
    return lpb.LogEntry(
        index=e.idx,
        at=timestamp(e.at),
        kind=e.kind,
        report_id=e.report_id or "",
        member=e.member or "",
        country=e.country or "",
        detail_json=e.detail,
        previous_hash=e.previous_hash,
        entry_hash=e.entry_hash,
    )


def entry_from_proto(m: lpb.LogEntry) -> LogEntry:
    return LogEntry(
        m.index,
        from_timestamp(m.at),
        m.kind,
        m.report_id or None,
        m.member or None,
        m.country or None,
        m.detail_json,
        m.previous_hash,
        m.entry_hash,
    )


def checkpoint_to_proto(cp: Checkpoint) -> lpb.Checkpoint:
    return lpb.Checkpoint(
        member=cp.member,
        size=cp.size,
        head_hash=cp.head_hash,
        at=timestamp(cp.at),
        key_id=cp.key_id,
        signature=cp.signature,
    )


def checkpoint_from_proto(m: lpb.Checkpoint) -> Checkpoint:
    return Checkpoint(m.member, m.size, m.head_hash, from_timestamp(m.at), m.key_id, m.signature)


CASES_PER_MESSAGE = 100


class PartnerServicer(pgrpc.PartnerServicer):
    def __init__(self, partners: Partners) -> None:
        self._partners = partners

    def _partner(self) -> str:
        subject = current_principal().subject
        if subject not in self._partners.partners:
            raise PermissionDenied(f"{subject!r} is not a partner of this node")
        return subject

    def PullCases(
        self, request: ppb.PullCasesRequest, context: grpc.ServicerContext
    ) -> Iterator[ppb.PullCasesResponse]:
        try:
            partner = self._partner()
            after = _cursor(request.after_cursor)
            cases = self._partners.pull(partner, after, request.limit)
        except Exception as error:
            abort(context, error)
        for start in range(0, len(cases), CASES_PER_MESSAGE):
            chunk = cases[start : start + CASES_PER_MESSAGE]
            yield ppb.PullCasesResponse(cases=[case_to_proto(v) for v in chunk])

    def AckCases(
        self, request: ppb.AckCasesRequest, context: grpc.ServicerContext
    ) -> ppb.AckCasesResponse:
        try:
            if len(request.case_ids) > 10_000:
                raise InvalidReport("at most 10,000 case ids per call", code="ack-too-many")
            acked, unknown = self._partners.ack(self._partner(), list(request.case_ids))
        except Exception as error:
            abort(context, error)
        return ppb.AckCasesResponse(acknowledged=acked, unknown=unknown)


def _cursor(text: str) -> int:
    if not text:
        return 0
    if not text.isdigit() or len(text) > 18:
        raise InvalidReport("after_cursor: not a cursor from this node", code="cursor-invalid")
    return int(text)


class RoutingLogServicer(lgrpc.RoutingLogServicer):
    def __init__(self, engine: Engine, member: str, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self._member = member
        self._clock = clock

    def ListRoutingLog(
        self, request: lpb.ListRoutingLogRequest, context: grpc.ServicerContext
    ) -> lpb.ListRoutingLogResponse:
        try:
            # On the wire, after_index is "start after entry N-1" so that 0 means the beginning.
            after = index_in_range("after_index", request.after_index)
            f = LogFilter(
                since=from_timestamp(request.since) if request.HasField("since") else None,
                until=from_timestamp(request.until) if request.HasField("until") else None,
                country=request.country or None,
                member=request.member or None,
                kind=request.kind or None,
                report_id=request.report_id or None,
                after_index=after - 1 if after else -1,
                page_size=request.page_size,
            )
            with self._engine.connect() as conn:
                entries, next_after = list_entries(conn, f)
        except Exception as error:
            abort(context, error)
        return lpb.ListRoutingLogResponse(
            entries=[entry_to_proto(e) for e in entries],
            next_after_index=(next_after + 1) if next_after is not None else 0,
        )

    def GetCheckpoint(
        self, request: lpb.GetCheckpointRequest, context: grpc.ServicerContext
    ) -> lpb.Checkpoint:
        t = schema.checkpoints
        try:
            size = index_in_range("size", request.size)
            q = select(t)
            q = q.where(t.c.size == size) if size else q.order_by(t.c.size.desc())
            with self._engine.connect() as conn:
                row = conn.execute(q.limit(1)).first()
            if row is None:
                raise NotFound("no such checkpoint")
        except Exception as error:
            abort(context, error)
        return checkpoint_to_proto(
            Checkpoint(self._member, row.size, row.head_hash, row.at, row.key_id, row.signature)
        )
