"""The gRPC servicer that answers ``GetStatistics``: this node's own figures, signed.

A ``stats:read`` token (exchange/edge/access.py) asks for a period and a granularity; the
request is checked before anything is counted (``stats_codec.period_from_request``: a malformed
day, an unknown granularity, an end before the start or too many buckets is INVALID_ARGUMENT
naming the field). The node's figures come from ``figures`` (the statistics engine's
``NodeFigures.snapshot``, which first folds the changes since the last fold through the node's
writer, then reads every noticed item for the scorecard), are encoded canonically and signed
with the node key (``wire/stats_signed``).

That is expensive, and any ``stats:read`` token may ask: each (period, granularity) answer is
kept ``KEEP`` (``exchange/kept.Kept``, single flight: askers of the same period meanwhile wait
for the one computing it), and at most ``at_once`` different answers are computed at a time —
one more is refused with RESOURCE_EXHAUSTED ("busy computing statistics"), not queued.

Only counts and histograms leave the node. Before it is sent the body passes the gatherers' own
checks, so a figure the protocol would refuse (a key too long or not printable) shows up here as
a bug, not as a silent gap in every network figure.

An answer whose body would pass ``max_body_bytes`` is refused with INVALID_ARGUMENT telling the
caller to ask for a coarser granularity or a shorter period — the gatherer refuses such bodies
anyway, and the node should not build and send one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import grpc

from auth.keys import SigningKey
from common.clock import Clock, system_clock
from exchange.edge.streams import abort
from exchange.errors import InvalidStatisticsRequest, Overloaded
from exchange.kept import Kept
from exchange.stats.model import Period, Snapshot
from exchange.wire.stats_codec import period_from_request, snapshot_from_body
from exchange.wire.stats_signed import MAX_BODY_BYTES, sign_statistics
from ihx.v1 import statistics_pb2 as spb
from ihx.v1 import statistics_pb2_grpc as sgrpc

Figures = Callable[[Period], Snapshot]

KEEP = timedelta(seconds=30)
AT_ONCE = 2  # different answers computed at a time
KEPT_ANSWERS = 16


class StatisticsServicer(sgrpc.StatisticsServicer):
    def __init__(
        self,
        figures: Figures,
        key: SigningKey,
        member: str,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        clock: Clock = system_clock,
        keep: timedelta = KEEP,
        at_once: int = AT_ONCE,
    ) -> None:
        self._figures = figures
        self._key = key
        self._member = member
        self._max_body = min(max_body_bytes, MAX_BODY_BYTES)
        self._kept: Kept[Period, spb.SignedStatistics] = Kept(clock, ttl=keep, most=KEPT_ANSWERS)
        self._computing = threading.BoundedSemaphore(at_once)

    def GetStatistics(
        self, request: spb.StatisticsRequest, context: grpc.ServicerContext
    ) -> spb.SignedStatistics:
        try:
            period = period_from_request(request)
            signed = self._kept.get(period, lambda: self._bounded(period))
            if len(signed.body) > self._max_body:
                raise InvalidStatisticsRequest(
                    f"the answer would be {len(signed.body)} bytes, at most {self._max_body}: "
                    "choose a coarser granularity or a shorter period",
                    code="stats-too-large",
                )
        except Exception as error:
            abort(context, error)
        return signed

    def _bounded(self, period: Period) -> spb.SignedStatistics:
        if not self._computing.acquire(blocking=False):
            raise Overloaded(
                "busy computing statistics for other callers: ask again in a few seconds"
            )
        try:
            return self._signed(period)
        finally:
            self._computing.release()

    def _signed(self, period: Period) -> spb.SignedStatistics:
        snapshot = self._figures(period)
        if snapshot.members != (self._member,) or snapshot.period != period:
            # The engine answered for someone or something else: a bug, never signed.
            raise RuntimeError(f"figures for {snapshot.members} {snapshot.period}, asked {period}")
        signed = sign_statistics(self._key, snapshot)
        _check_own(signed, snapshot)
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
