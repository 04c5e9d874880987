"""Every view of a case page is a routing-log entry, as every partner's pull is (and so is
every CSV export of cases).

A ``viewed`` entry names the case, the viewer's token subject and issuer, and whether the URL
was shown; its country is the case's hosting country (as a pull's is), never its URL. It is
written — and committed — before the page is answered: a view the log cannot record is not
shown (the database's error becomes a 503). The entries go through the web process's own
``Writer``, which continues the node's chain from its stored head under the write lock, so the
log stays one chain beside the running node.
"""

from __future__ import annotations

from auth.tokens import Principal
from common.clock import Clock
from exchange.domain import LogKind
from exchange.lifecycle.model import CaseDetail
from exchange.store.writer import Tx, Writer


class ViewAudit:
    def __init__(self, writer: Writer, clock: Clock) -> None:
        self._writer = writer
        self._clock = clock

    def case_viewed(self, case: CaseDetail, viewer: Principal, *, url_shown: bool) -> None:
        """Record the view; returns once it is committed."""

        def job(tx: Tx) -> None:
            tx.log(
                tx.chain.append(
                    self._clock(),
                    LogKind.VIEWED,
                    country=case.hosting_country,
                    detail={
                        "case": case.id,
                        "viewer": viewer.subject,
                        "issuer": viewer.issuer,
                        "url_shown": url_shown,
                    },
                )
            )

        self._writer.execute(job)

    def cases_exported(
        self, viewer: Principal, *, columns: list[str], status: str, url_shown: bool
    ) -> None:
        """Record a CSV export of cases (one entry for the whole download)."""

        def job(tx: Tx) -> None:
            tx.log(
                tx.chain.append(
                    self._clock(),
                    LogKind.VIEWED,
                    detail={
                        "export": "cases",
                        "status": status,
                        "columns": columns,
                        "viewer": viewer.subject,
                        "issuer": viewer.issuer,
                        "url_shown": url_shown,
                    },
                )
            )

        self._writer.execute(job)
