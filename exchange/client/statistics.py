"""Gathering the network's statistics: ask every member, verify each answer, sum what verified.

``gather`` asks every member of the (signed, verified) manifest for its signed snapshot at the
endpoint the manifest gives — the way ``ihx log --network`` finds the members — with that
member's ``stats:read`` token (or the one network token every node accepts) and, when the
asking node has TLS material, the node's own client certificate. Calls run concurrently on at
most ``workers`` threads, each with its own deadline, so a silent member costs one timeout, not
the whole gather.

Each answer is read as raw bytes and opened by ``wire/stats_signed.open_statistics`` (signature
against the member's key in the manifest before anything is parsed, then every field), then the
verified snapshots are summed by ``stats.model.merge``: the network's figure is exactly the sum
of the signed snapshots. A member that could not be asked (no token), did not answer, refused,
or whose answer failed a check is named in ``Merged.missing`` with why — never left out
silently. Reasons name the address and the gRPC code, and quote at most a short, printable
excerpt of what a member said.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

import grpc

from auth.manifest import Manifest
from common.clock import Clock
from exchange.client.stubs import ClientTls, StatisticsClient
from exchange.errors import StatisticsRefused
from exchange.stats.model import Merged, Period, Snapshot, merge
from exchange.wire.stats_codec import MAX_MEMBERS
from exchange.wire.stats_signed import open_statistics

__all__ = ["Gathering", "gather"]

_REASON_CHARS = 200


@dataclass(frozen=True, slots=True)
class Gathering:
    """How to ask: each member's own token, or ``everyone``: a network token (audience the
    network, never a member's: that one a member could replay), TLS, …

    ``answered`` is called with each member's id once it is done (a progress bar)."""

    tokens: Mapping[str, str]
    clock: Clock
    max_skew: timedelta
    tls: ClientTls | None = None
    timeout: float = 30.0
    workers: int = 8
    everyone: str | None = None
    answered: Callable[[str], object] | None = None

    def token_for(self, member: str) -> str | None:
        return self.tokens.get(member, self.everyone)


def gather(manifest: Manifest, period: Period, how: Gathering) -> Merged:
    """Every member's verified snapshot of ``period``, summed; the others named with why."""
    members = list(manifest.members)
    if len(members) > MAX_MEMBERS:
        raise StatisticsRefused(
            f"the manifest has {len(members)} members; one merge sums at most {MAX_MEMBERS}",
            code="stats-members",
        )
    results: dict[str, Snapshot | str] = {}
    with ThreadPoolExecutor(
        max_workers=max(1, min(how.workers, len(members))), thread_name_prefix="ihx-stats"
    ) as pool:
        pending = {
            m.id: pool.submit(_ask_one, m.id, m.endpoint, manifest, period, how) for m in members
        }
        for member, future in pending.items():
            results[member] = future.result()
            if how.answered is not None:
                how.answered(member)
    snapshots = [r for r in results.values() if isinstance(r, Snapshot)]
    missing = {m: r for m, r in results.items() if isinstance(r, str)}
    return merge(period, snapshots, missing, how.clock())


def _ask_one(
    member: str, address: str, manifest: Manifest, period: Period, how: Gathering
) -> Snapshot | str:
    """The member's verified snapshot, or why there is none."""
    token = how.token_for(member)
    if token is None:
        return "not asked: no stats:read token for it (--token MEMBER=TOKEN or a network token)"
    try:
        with StatisticsClient(address, token=token, timeout=how.timeout, tls=how.tls) as client:
            data = client.signed(period)
        return open_statistics(
            data,
            member=member,
            period=period,
            manifest=manifest,
            now=how.clock(),
            max_skew=how.max_skew,
        )
    except grpc.RpcError as error:
        return _rpc_reason(cast(grpc.Call, error), address, how.timeout)
    except StatisticsRefused as error:
        return f"answer refused ({error.code}): {_excerpt(error.message)}"


_RPC_REASONS: Mapping[grpc.StatusCode, Callable[[str, float], str]] = {
    grpc.StatusCode.UNAVAILABLE: lambda d, _: f"unreachable: {d}",
    grpc.StatusCode.DEADLINE_EXCEEDED: lambda _, t: f"no answer within {t:g} s",
    grpc.StatusCode.UNAUTHENTICATED: lambda d, _: f"refused our token: {d}",
    grpc.StatusCode.PERMISSION_DENIED: lambda d, _: f"refused our token: {d}",
    grpc.StatusCode.UNIMPLEMENTED: lambda d, _: f"does not serve statistics: {d}",
}


def _rpc_reason(call: grpc.Call, address: str, timeout: float) -> str:
    """What happened, then where and the code the node answered: ``… (<address>: <CODE>)``."""
    code = call.code()
    details = _excerpt(call.details() or "")
    reason = _RPC_REASONS.get(code)
    if reason is None:
        return f"answered {code.name}: {details} ({address})"
    return f"{reason(details, timeout)} ({address}: {code.name})"


def _excerpt(text: str) -> str:
    """What a member said, as one short printable line (it is hostile text)."""
    flat = "".join(c if c.isprintable() else " " for c in text)
    flat = " ".join(flat.split())
    return flat if len(flat) <= _REASON_CHARS else flat[: _REASON_CHARS - 1] + "…"
