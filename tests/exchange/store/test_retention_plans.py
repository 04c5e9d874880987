"""Retention's look-ups (exchange/store/retention.py) search indexes: what is due is asked of
every sent report not yet anonymised, so a scan of the item states in each would grow with the
square of what a node holds."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from exchange.store import retention
from tests.exchange.store.plans import sqlite_plans

CUTOFF = datetime.fromisoformat("2026-01-01T00:00:00+00:00")


def test_sent_reports_due_find_their_item_states_by_index(sqlite_engine: Engine) -> None:
    """A report's states are found by its place (0017) or, written before it arrived, by its
    id — through the index of each, never by a scan of every state."""
    (plan,) = sqlite_plans(
        sqlite_engine,
        "item_states",
        lambda c: retention.sent_reports_due(c, "nl-eokm", CUTOFF, 10),
    )
    assert "SCAN item_states" not in plan, plan
    assert plan.count("ix_item_states_report_seq") == 2, plan  # both EXISTS
    assert plan.count("ix_item_states_unplaced_report_id") == 2, plan
