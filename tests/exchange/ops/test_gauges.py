"""``DatabaseGauges`` (ops/gauges.py): read by ``refresh``, served from the last reading, and
kept (with a failure counted) when a read fails — here because the database lost a table."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import Engine, text

from exchange.ops.gauges import DatabaseGauges, GaugeSources
from tests.exchange.factories import FakeClock


def families(gauges: DatabaseGauges) -> dict[str, list[tuple[dict[str, str], float]]]:
    return {f.name: [(s.labels, s.value) for s in f.samples] for f in gauges.collect()}


def test_a_failed_read_keeps_the_last_values_and_is_counted(
    engine: Engine, clock: FakeClock
) -> None:
    failures = Counter("failures", "", registry=CollectorRegistry())
    gauges = DatabaseGauges(
        GaugeSources(engine, clock, queues=lambda: {"unassessed": 3}), failures, interval=3600
    )
    assert families(gauges) == {}  # nothing read yet: a scrape does not read
    gauges.refresh()
    read = families(gauges)
    assert read["ihx_case_queue"] == [({"queue": "unassessed"}, 3)]
    assert read["ihx_partner_backlog"] == []
    assert read["ihx_gauges_read_timestamp_seconds"] == [({}, clock().timestamp())]

    with engine.begin() as conn:
        conn.execute(text("DROP TABLE partner_cases"))
    clock.advance(60)
    gauges.refresh()
    assert failures._value.get() == 1
    assert families(gauges) == read  # the last good reading, its timestamp says how old
