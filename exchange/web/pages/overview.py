"""The network at a glance: the manifest's members and countries, this node's peers.

What ``ihx status`` reads (``ops/status.collect_status``) plus the manifest the node holds now
and, per peer, when its last signed receipt came back (``store/overview.last_receipts``):
backlog (reports waiting, sealed batches without a receipt), failures in a row and since when,
the last error, when it was last heard from. The status is one set-based read of every table
(a second on a million cases), so it is kept 15 s and the page says when it was read.
Scope ``log:read``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from auth.tokens import Scope
from exchange.ops.status import collect_status
from exchange.store.overview import last_receipts
from exchange.web.context import Web, bind


@dataclass(frozen=True, slots=True)
class PeerRow:
    member: str
    name: str
    countries: str
    waiting: int
    unreceipted: int
    delivered: int
    failures: int
    failing_since: datetime | None
    last_error: str
    last_heard: datetime | None
    last_receipt: datetime | None


def overview(web: Web, request: Request) -> Response:
    session = web.gate.require(request, Scope.LOG_READ)
    manifest = web.local.manifests.current()
    at, status = web.status.get(
        "status", lambda: (web.clock(), collect_status(web.local.engine, web.local.member))
    )
    receipts = last_receipts(web.local.engine)
    waiting = {p.destination: p.reports for p in status.outbox}
    peers = {p.member: p for p in status.peers}
    rows = []
    for m in manifest.members:
        if m.id == web.local.member:
            continue
        p = peers.get(m.id)
        rows.append(
            PeerRow(
                member=m.id,
                name=m.name,
                countries=", ".join(sorted(m.countries)) or "—",
                waiting=waiting.get(m.id, 0),
                unreceipted=p.unreceipted_batches if p else 0,
                delivered=p.delivered_reports if p else 0,
                failures=p.failures if p else 0,
                failing_since=p.failing_since if p else None,
                last_error=(p.last_error or "") if p else "",
                last_heard=p.last_heard_at if p else None,
                last_receipt=receipts.get(m.id),
            )
        )
    served = sorted({cc for m in manifest.members for cc in m.countries})
    return web.renderer.page(
        "overview.html",
        session=session,
        path="/",
        manifest=manifest,
        members=sorted(manifest.members, key=lambda m: m.id),
        served=served,
        orphan_rules=sorted(manifest.orphan_rules.items()),
        node=status,
        status_at=at,
        peers=rows,
    )


def routes(web: Web) -> list[BaseRoute]:
    return [Route("/", bind(web, overview), methods=["GET"])]
