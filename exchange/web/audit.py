"""Every view of a case page is a routing-log entry, as every partner's pull is (and so is
every CSV export of cases).

A ``viewed`` entry names the case, the viewer's token subject and issuer, and whether the URL
was shown; its country is the case's hosting country (as a pull's is), never its URL. It is
written — and committed — before the page is answered: a view the log cannot record is not
shown (the database's error becomes a 503). The entries go through the web process's own
``Writer``, which continues the node's chain from its stored head under the write lock, so the
log stays one chain beside the running node.

Views are coalesced so reloading cannot flood the log: one entry per (viewer, case, URL shown)
per ``VIEW_WINDOW`` (the first view in the window is recorded; later ones within it are covered
by it), remembered for at most ``MOST_VIEWS`` keys (forgetting one only means its next view is
recorded again). The memory is the process's: a restarted or second web process records anew.

A CSV export of cases is one entry; an export *with the URL column* is also recorded per case:
before each page of rows leaves, entries listing that page's case ids (``URL_IDS_PER_ENTRY`` per
entry, numbered ``part``), so "who saw case X's URL" is answered by searching the log for X.
``ihx export cases`` audits the same way (``url_pages``, through its own ``Writer``), naming its
operator (``Operator``: the ``--operator`` name or the OS user, issuer ``cli``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from common.clock import Clock
from exchange.domain import LogKind
from exchange.lifecycle.model import CaseDetail
from exchange.store.writer import Tx, Writer

VIEW_WINDOW = timedelta(minutes=10)
MOST_VIEWS = 10_000
URL_IDS_PER_ENTRY = 250

ViewKey = tuple[str, str, str, bool]  # issuer, subject, case id, URL shown


class Viewer(Protocol):
    """Who looked: a web session's token principal, or the CLI's operator."""

    @property
    def subject(self) -> str: ...

    @property
    def issuer(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Operator:
    """The person running ``ihx export`` at the node (no token: the OS account vouches)."""

    subject: str
    issuer: str = "cli"


class ViewAudit:
    def __init__(self, writer: Writer, clock: Clock, *, window: timedelta = VIEW_WINDOW) -> None:
        self._writer = writer
        self._clock = clock
        self._window = window
        self._recorded: OrderedDict[ViewKey, datetime] = OrderedDict()
        self._lock = threading.Lock()

    def _covered(self, key: ViewKey, now: datetime) -> bool:
        with self._lock:
            at = self._recorded.get(key)
            return at is not None and now - at < self._window

    def _remember(self, key: ViewKey, now: datetime) -> None:
        with self._lock:
            self._recorded.pop(key, None)
            self._recorded[key] = now
            while len(self._recorded) > MOST_VIEWS:
                self._recorded.popitem(last=False)

    def _entry(self, tx: Tx, detail: dict[str, object], country: str | None = None) -> None:
        """One ``viewed`` entry in ``tx``: the shape every view and export shares."""
        tx.log(tx.chain.append(self._clock(), LogKind.VIEWED, country=country, detail=detail))

    def case_viewed(self, case: CaseDetail, viewer: Viewer, *, url_shown: bool) -> None:
        """Record the view unless this viewer's view of the case within the window is recorded
        already; returns once it is committed."""
        now = self._clock()
        key = (viewer.issuer, viewer.subject, case.id, url_shown)
        if self._covered(key, now):
            return
        detail = {"case": case.id, **_who(viewer), "url_shown": url_shown}
        self._writer.execute(lambda tx: self._entry(tx, detail, case.hosting_country))
        self._remember(key, now)

    def urls_exported(self, viewer: Viewer, case_ids: Sequence[str], *, first_part: int) -> int:
        """Record that ``case_ids``' URLs are about to leave in an export; returns the next part
        number. Committed before the rows are sent."""
        parts = [
            case_ids[n : n + URL_IDS_PER_ENTRY] for n in range(0, len(case_ids), URL_IDS_PER_ENTRY)
        ]

        def job(tx: Tx) -> None:
            for n, ids in enumerate(parts, start=first_part):
                detail = {"export": "cases", "part": n, "cases": list(ids), **_who(viewer)}
                self._entry(tx, {**detail, "url_shown": True})

        if parts:
            self._writer.execute(job)
        return first_part + len(parts)

    def url_pages(self, viewer: Viewer) -> Callable[[list[str]], None]:
        """A ``before_page`` for ``cases_csv``: each page's case ids recorded (parts 1, 2, …)
        before its rows with URLs leave."""
        part = 1

        def before_page(ids: list[str]) -> None:
            nonlocal part
            part = self.urls_exported(viewer, ids, first_part=part)

        return before_page

    def cases_exported(
        self, viewer: Viewer, *, columns: list[str], status: str, url_shown: bool
    ) -> None:
        """Record a CSV export of cases (one entry for the whole download)."""
        detail = {"export": "cases", "status": status, "columns": columns, **_who(viewer)}
        self._writer.execute(lambda tx: self._entry(tx, {**detail, "url_shown": url_shown}))


def _who(viewer: Viewer) -> dict[str, str]:
    return {"viewer": viewer.subject, "issuer": viewer.issuer}
