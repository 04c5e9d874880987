"""The hoster scorecard (``ihx hosts``): how each hoster answered this node's notices.

Scope ``stats:read``: figures per hoster (ASN, organisation), never a URL. The scorecard reads
every noticed item (``store.scorecard``), so the page keeps it for ``HOSTS_TTL`` and computes it
once for everyone asking meanwhile (``Kept``'s single flight); it shows the hosters with the most
notices first, ``HOSTS_PAGE`` a page. Figures per hoster are finer than a country, so the page
shows them as the statistics do (``model.shown``: counts under five as "<5") and gives no
removal median or 90th percentile under five removals (nor a longest-online under five items
online): one or two times would be those items' own times.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from auth.tokens import Scope
from exchange.stats.model import MASK_BELOW, Figure, shown
from exchange.takedown.notice_model import HosterScore
from exchange.takedown.scorecard import scorecard
from exchange.web.context import Web, bind
from exchange.web.errors import BadQuery

HOSTS_TTL = timedelta(seconds=60)
HOSTS_PAGE = 100
MAX_PAGE_NO = 10_000


def ranked(scores: Sequence[HosterScore]) -> list[HosterScore]:
    """Most notices first; ties by ASN (unknown last), then organisation."""
    return sorted(
        scores,
        key=lambda h: (-h.notices, h.asn is None, h.asn or 0, h.organisation.casefold()),
    )


@dataclass(frozen=True, slots=True)
class ShownScore:
    """A scorecard line as the page shows it: counts masked, few times never summarised."""

    asn: int | None
    organisation: str
    notices: str
    cases: str
    items: str
    removed: str
    removal_median_s: float | None
    removal_p90_s: float | None
    still_online: str
    online_max_s: float | None


def masked(s: HosterScore) -> ShownScore:
    enough_removed = s.removed >= MASK_BELOW
    return ShownScore(
        asn=s.asn,
        organisation=s.organisation,
        notices=shown(Figure.HOSTER_NOTICES, s.notices),
        cases=shown(Figure.HOSTER_NOTICES, s.cases),
        items=shown(Figure.HOSTER_ITEMS, s.items),
        removed=shown(Figure.HOSTER_REMOVED, s.removed),
        removal_median_s=s.removal_median_s if enough_removed else None,
        removal_p90_s=s.removal_p90_s if enough_removed else None,
        still_online=shown(Figure.HOSTER_ONLINE, s.still_online),
        online_max_s=s.online_max_s if s.still_online >= MASK_BELOW else None,
    )


def page_number(value: str | None) -> int:
    if value is None or value == "":
        return 1
    if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE_NO:
        raise BadQuery(f"page: a whole number from 1 to {MAX_PAGE_NO}")
    return int(value)


def hosts_page(web: Web, request: Request) -> Response:
    session = web.gate.require(request, Scope.STATS_READ)
    page = page_number(request.query_params.get("page"))

    def compute() -> tuple[datetime, list[HosterScore]]:
        now = web.clock()
        return now, ranked(scorecard(web.local.engine, web.local.member, now))

    at, scores = web.hosts.get("all", compute)
    first = (page - 1) * HOSTS_PAGE
    return web.renderer.page(
        "hosts.html",
        session=session,
        path="/hosts",
        scores=[masked(s) for s in scores[first : first + HOSTS_PAGE]],
        at=at,
        first=first + 1,
        total=len(scores),
        page=page,
        more=first + HOSTS_PAGE < len(scores),
    )


def routes(web: Web) -> list[BaseRoute]:
    return [Route("/hosts", bind(web, hosts_page), methods=["GET"])]
