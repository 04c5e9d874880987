"""The gRPC servicer that answers ``GetStatistics``: this node's own figures, signed.

A ``stats:read`` token (exchange/edge/access.py) asks for a period and a granularity; the
request is checked before anything is counted (``stats_codec.period_from_request``: a malformed
day, an unknown granularity, an end before the start or too many buckets is INVALID_ARGUMENT
naming the field). The node's figures come from ``figures`` (the statistics engine's
``NodeFigures.snapshot``, read-only, never through the writer), are encoded canonically and
signed with the node key (``wire/stats_signed``). Only counts and histograms leave the node.
Before it is sent the body passes the gatherers' own checks, so a figure the protocol would
refuse (a key too long or not printable) shows up here as a bug, not as a silent gap in every
network figure.

An answer whose body would pass ``max_body_bytes`` is refused with INVALID_ARGUMENT telling the
caller to ask for a coarser granularity or a shorter period — the gatherer refuses such bodies
anyway, and the node should not build and send one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import grpc

from auth.keys import SigningKey
from exchange.edge.streams import abort
from exchange.errors import InvalidStatisticsRequest
from exchange.stats.model import Period, Snapshot
from exchange.wire.stats_codec import period_from_request, snapshot_from_body
from exchange.wire.stats_signed import MAX_BODY_BYTES, sign_statistics
from ihx.v1 import statistics_pb2 as spb
from ihx.v1 import statistics_pb2_grpc as sgrpc

Figures = Callable[[Period], Snapshot]


class StatisticsServicer(sgrpc.StatisticsServicer):
    def __init__(
        self,
        figures: Figures,
        key: SigningKey,
        member: str,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self._figures = figures
        self._key = key
        self._member = member
        self._max_body = min(max_body_bytes, MAX_BODY_BYTES)

    def GetStatistics(
        self, request: spb.StatisticsRequest, context: grpc.ServicerContext
    ) -> spb.SignedStatistics:
        try:
            period = period_from_request(request)
            snapshot = self._figures(period)
            if snapshot.members != (self._member,) or snapshot.period != period:
                # The engine answered for someone or something else: a bug, never signed.
                raise RuntimeError(
                    f"figures for {snapshot.members} {snapshot.period}, asked {period}"
                )
            signed = sign_statistics(self._key, snapshot)
            _check_own(signed, snapshot)
            if len(signed.body) > self._max_body:
                raise InvalidStatisticsRequest(
                    f"the answer would be {len(signed.body)} bytes, at most {self._max_body}: "
                    "choose a coarser granularity or a shorter period",
                    code="stats-too-large",
                )
        except Exception as error:
            abort(context, error)
        return signed


def _check_own(signed: spb.SignedStatistics, snapshot: Snapshot) -> None:
    """The node never signs what every gatherer would refuse (a key the protocol does not allow,
    a count out of range): the same checks, here, raise — a bug in the figures, logged as one —
    instead of the member silently dropping out of every network figure."""
    body = spb.StatisticsBody.FromString(signed.body)
    at = snapshot.generated_at
    snapshot_from_body(
        body, member=snapshot.members[0], period=snapshot.period, now=at, max_skew=timedelta(0)
    )
