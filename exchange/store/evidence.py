"""Read model for ``ihx verify-report``: one stored report with everything that proves it.

Why a module of its own: re-verifying a report (ops/verify.py) needs rows of several aggregates
at once — the report, the inbox envelope it arrived in (signed header, receipt we gave), or on
the origin node the delivery, the sealed batch and the receiver's receipt. The checks must run
on the stored bytes only, so this module hands over the rows as stored and decides nothing.

A report that came by a move (``case_transfers``) also has the transfer row: its payload is
the leaf of the old holder's envelope, and it carries the origin's own envelope header.

Design: ``read_evidence`` reads in one connection exactly the rows the report's role calls for and
returns them in a frozen ``Evidence``; rows stay SQLAlchemy rows (read by attribute name, typed
``Any``) because the verifier reads raw columns and must see what is there, tampered or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, select

from exchange.store import schema


@dataclass(frozen=True, slots=True)
class Evidence:
    report: Any  # the ``reports`` row
    envelope: Any | None = None  # received: the ``inbox`` row of the envelope it arrived in
    delivery: Any | None = None  # origin: the ``deliveries`` row to the decision member
    batch: Any | None = None  # origin: the ``batches`` row that delivery names
    waiting: bool = False  # origin, not delivered: still in the outbox
    transfer: Any | None = None  # received by a move: the ``case_transfers`` row that carried it


def read_evidence(engine: Engine, report_id: str) -> Evidence | None:
    """The stored report ``report_id`` and its evidence; None for an unknown id."""
    reports = schema.reports
    with engine.connect() as conn:
        row = conn.execute(select(reports).where(reports.c.id == report_id)).first()
        if row is None:
            return None
        if row.role == "received":
            return Evidence(row, envelope=_envelope(conn, row), transfer=_transfer(conn, row))
        return _delivery_evidence(conn, row)


def _envelope(conn: Connection, row: Any) -> Any | None:
    if row.sender is None or row.envelope_sequence is None:
        return None
    inbox = schema.inbox
    return conn.execute(
        select(inbox).where(inbox.c.sender == row.sender, inbox.c.sequence == row.envelope_sequence)
    ).first()


def _transfer(conn: Connection, row: Any) -> Any | None:
    """The transfer whose envelope the report's row names, when it came here by a move."""
    t = schema.case_transfers
    return conn.execute(
        select(t).where(
            t.c.report_id == row.id,
            t.c.role == "received",
            t.c.sender == row.sender,
            t.c.envelope_sequence == row.envelope_sequence,
        )
    ).first()


def _delivery_evidence(conn: Connection, row: Any) -> Evidence:
    deliveries, batches, outbox = schema.deliveries, schema.batches, schema.outbox
    delivery = conn.execute(
        select(deliveries).where(
            deliveries.c.report_seq == row.seq, deliveries.c.destination == row.decision_member
        )
    ).first()
    if delivery is None:
        waiting = conn.execute(select(outbox.c.id).where(outbox.c.report_id == row.id)).first()
        return Evidence(row, waiting=waiting is not None)
    batch = conn.execute(
        select(batches).where(
            batches.c.destination == delivery.destination,
            batches.c.sequence == delivery.sequence,
        )
    ).first()
    return Evidence(row, delivery=delivery, batch=batch)
