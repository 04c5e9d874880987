"""Items held here, written as the lifecycle writes them, and the figures recomputed directly.

``Held`` writes report rows (the facts the figures read: hosting country, site type,
commercial, known content) and item states through the lifecycle store (``open_items``,
``save_many_states``), and routing-log entries through the writer's chain — the same rows the
node writes. ``recompute`` counts every contribution from a plain read of the tables: what the
rollups must hold after any sequence of changes and folds.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from exchange.batch_entries import receipted_entry, sent_entry
from exchange.domain import LogKind
from exchange.lifecycle.model import ItemState
from exchange.stats.facts import (
    Contribution,
    ItemRow,
    LogRow,
    item_contributions,
    item_facts,
    log_contributions,
)
from exchange.store import lifecycle as lifecycle_store
from exchange.store import schema
from exchange.store.writer import Tx, Writer
from exchange.times import to_micros
from tests.exchange.lifecycle.factories import make_state

ME = "us-ncmec"


def report_row(
    rid: str,
    *,
    seq: int,
    country: str | None,
    at: datetime,
    site_type: str = "website",
    commercial: bool = False,
    role: str = "received",
) -> dict[str, Any]:
    return {
        "id": rid,
        "seq": seq,
        "role": role,
        "origin_member": "nl-eokm",
        "url": f"https://example.test/{rid}",
        "url_key": rid.encode()[:32].ljust(32, b"\0"),
        "received_at": at,
        "stored_at": at,
        "site_type": site_type,
        "commercial": commercial,
        "payment_methods": "",
        "notes": "",
        "hosting_country": country,
        "decision_member": ME,
        "decision_reason": "served-member",
        "wire": b"",
    }


def item_row(seq: int, idx: int, *, known: bool) -> dict[str, Any]:
    return {
        "report_seq": seq,
        "idx": idx,
        "classification": "baseline",
        "media_type": "image",
        "age_group": "unknown",
        "known_member": "de-eco" if known else None,
    }


@dataclass
class Held:
    engine: Engine
    writer: Writer
    items: dict[tuple[str, str, int], ItemState] = field(default_factory=dict)
    _n: int = 0

    def open(
        self,
        *,
        now: datetime,
        items: int = 1,
        country: str | None = "US",
        known: bool = False,
        orphaned: bool = False,
        holder: str = ME,
        site_type: str = "website",
        commercial: bool = False,
    ) -> str:
        """A report with ``items`` items opened in a case held by ``holder``, clock at now."""
        self._n += 1
        n = self._n
        rid, cid = f"r-{n:06d}", f"c-{n:06d}"
        states = []
        for i in range(items):
            s = make_state(i, seed=rid, holder=holder)
            s = replace(s, ref=replace(s.ref, report_id=rid, clock_started=now), clock_started=now)
            states.append(s)
            self.items[(cid, rid, i)] = s

        def job(tx: Tx) -> None:
            tx.conn.execute(
                schema.reports.insert(),
                report_row(
                    rid,
                    seq=n,
                    country=country,
                    at=now,
                    site_type=site_type,
                    commercial=commercial,
                ),
            )
            tx.conn.execute(
                schema.items.insert(), [item_row(n, i, known=known) for i in range(items)]
            )
            lifecycle_store.open_items(tx.conn, [(cid, s, orphaned) for s in states], now)

        self.writer.execute(job)
        return cid

    def change(self, key: tuple[str, str, int], state: ItemState, *, now: datetime) -> None:
        self.items[key] = state
        self.writer.execute(
            lambda tx: lifecycle_store.save_many_states(tx.conn, [(key[0], state)], now)
        )

    def log(
        self,
        kind: LogKind,
        *,
        now: datetime,
        report_id: str | None = None,
        member: str | None = None,
        country: str | None = None,
        detail: dict[str, object] | None = None,
    ) -> None:
        def job(tx: Tx) -> None:
            tx.log(
                tx.chain.append(
                    now, kind, report_id=report_id, member=member, country=country, detail=detail
                )
            )

        self.writer.execute(job)

    def log_sent(self, *, now: datetime, member: str, sequence: int, ids: list[str]) -> None:
        """The ``sent`` entry of a batch of ``ids``, as the sender writes it."""
        self.writer.execute(
            lambda tx: tx.log(sent_entry(tx.chain, now, member, sequence, ids), batch=sequence)
        )

    def log_receipted(self, *, now: datetime, member: str, sequence: int, ids: list[str]) -> None:
        """The ``receipted`` entry of a batch of ``ids`` (each taken into a new case)."""
        results = [(rid, "new-case", f"c-{rid}") for rid in ids]

        def job(tx: Tx) -> None:
            entry = receipted_entry(tx.chain, now, member, sequence, now, results)
            tx.log(entry, batch=sequence)

        self.writer.execute(job)


def recompute(engine: Engine, member: str = ME) -> dict[Contribution, int]:
    """Every count the figures hold, from a plain read of the tables (no rollup)."""
    total: Counter[Contribution] = Counter()
    with engine.connect() as conn:
        reports = {r.id: r for r in conn.execute(select(schema.reports))}
        ids = {r.seq: r.id for r in reports.values()}
        known = {
            (ids[r.report_seq], r.idx): r.known_member for r in conn.execute(select(schema.items))
        }
        for s in conn.execute(
            select(schema.item_states).where(schema.item_states.c.holder == member)
        ):
            total.update(item_contributions(item_facts(_item(s, reports, known))))
        for e in conn.execute(select(schema.routing_log).order_by(schema.routing_log.c.idx)):
            for row in _log(e, reports):
                total.update(log_contributions(row))
    return {c: n for c, n in total.items() if n}


def _item(s: Any, reports: dict[str, Any], known: dict[tuple[str, int], Any]) -> ItemRow:
    r = reports.get(s.report_id)
    return ItemRow(
        s.clock_started,
        r.hosting_country if r else None,
        s.orphaned,
        known.get((s.report_id, s.idx)),
        r.site_type if r else "",
        bool(r.commercial) if r else False,
        s.classification,
        s.age_group,
        s.gender,
        s.stage,
        s.moved_to_country,
        s.disputed,
        s.lea_at,
        s.closed_at,
    )


def _log(e: Any, reports: dict[str, Any]) -> list[LogRow]:
    """The entry as the folder counts it: a batch's ``sent`` as that many entries of one
    report, its ``receipted`` as one per report it lists."""
    # Read here as a coordinator would, not by the helpers the folder uses.
    listed = json.loads(e.detail).get("reports") if e.report_id is None else None
    if listed is None or e.kind not in ("sent", "receipted"):
        return [_one(e, e.report_id, e.detail, reports)]
    if e.kind == "sent":
        return [_one(e, None, e.detail, reports)] * len(listed)
    return [_one(e, rid, "{}", reports) for rid, _, _ in listed]


def _one(e: Any, report_id: str | None, detail: str, reports: dict[str, Any]) -> LogRow:
    r = reports.get(report_id) if report_id else None
    intake = to_micros(r.received_at) if r is not None and r.role == "origin" else None
    return LogRow(to_micros(e.at), e.kind, e.member, e.country, detail, intake)
