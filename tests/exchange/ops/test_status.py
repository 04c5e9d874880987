"""``collect_status`` (ops/status.py) over a real migrated database, filled by the real components.

Reports come in through the node's own intake (a local NL case, DE reports waiting in the outbox)
and receiver (an envelope from nl-eokm to de-eco); the peers row is written through the writer as
the sender would. The status must name every figure the way ``ihx status --json`` prints it.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from exchange.intake import Intake
from exchange.ops.status import PeerState, Pending, collect_status, to_document
from exchange.receiver import Receiver
from exchange.store import schema
from exchange.store.migrate import head_revision
from exchange.store.writer import Tx, Writer
from tests.exchange.factories import (
    T0,
    FakeClock,
    make_report,
    make_submission,
    report_wire,
    seal_batch,
    table_counts,
    url_in,
)


def test_an_empty_node_has_nothing_to_show(engine: Engine) -> None:
    status = collect_status(engine, "nl-eokm")
    assert status.member == "nl-eokm"
    assert status.schema_revision == status.schema_head == head_revision()
    assert status.reports_by_role == {}
    assert (status.cases_open, status.cases_total) == (0, 0)
    assert (status.outbox, status.peers, status.outbox_total) == ((), (), 0)
    assert (status.envelopes_received, status.hash_index_size, status.routing_log_size) == (0, 0, 0)


def test_intake_shows_as_a_case_and_an_outbox_backlog(
    engine: Engine, intake: Intake, clock: FakeClock
) -> None:
    intake.submit(make_submission(url_in("NL"), hashes=["local"]))
    intake.submit(make_submission(url_in("DE", "/1.jpg"), hashes=["de-1"]))
    clock.advance(5)
    intake.submit(make_submission(url_in("DE", "/2.jpg"), hashes=["de-2"]))

    status = collect_status(engine, "nl-eokm")
    assert status.reports_by_role == {"origin": 3}
    assert (status.cases_open, status.cases_total) == (1, 1)
    assert status.outbox == (Pending("de-eco", reports=2, in_batches=0, oldest=T0),)
    assert status.outbox_total == 2
    assert status.envelopes_received == 0
    # The sizes are the tables' own row counts (one log entry per decision and per case event).
    rows = table_counts(engine)
    assert (status.routing_log_size, status.hash_index_size) == (
        rows["routing_log"],
        rows["hash_index"],
    )
    assert status.routing_log_size >= 3


def test_a_received_envelope_counts_on_the_receiving_node(
    engine: Engine, receiver: Receiver
) -> None:
    report = make_report(url=url_in("DE"), hashes=["arrived"])
    receiver.receive(seal_batch([report_wire(report)], sequence=1).to_proto())

    status = collect_status(engine, "de-eco")
    assert status.reports_by_role == {"received": 1}
    assert status.envelopes_received == 1
    assert (status.cases_open, status.cases_total) == (1, 1)


def test_peer_state_comes_from_the_peers_row(engine: Engine, writer: Writer) -> None:
    failing = T0 - timedelta(minutes=3)

    def record(tx: Tx) -> None:
        tx.conn.execute(
            schema.peers.insert().values(
                member="de-eco",
                next_sequence=7,
                announce_cursor=0,
                last_heard_at=T0,
                last_error="unavailable",
                failing_since=failing,
                failures=4,
            )
        )

    writer.submit(record).result(10)
    (peer,) = collect_status(engine, "nl-eokm").peers
    assert peer == PeerState(
        member="de-eco",
        unreceipted_batches=0,
        next_sequence=7,
        last_heard_at=T0,
        last_error="unavailable",
        delivered_reports=0,
        failing_since=failing,
        failures=4,
    )


def test_the_document_names_every_field_with_utc_times(
    engine: Engine, intake: Intake, writer: Writer
) -> None:
    intake.submit(make_submission(url_in("DE"), hashes=["doc"]))
    document = to_document(collect_status(engine, "nl-eokm"))
    assert document["member"] == "nl-eokm"
    assert document["schema"] == {"revision": head_revision(), "head": head_revision()}
    assert document["reports"] == {"origin": 1}
    assert document["cases"] == {"open": 0, "total": 0}
    assert document["outbox"] == [
        {
            "destination": "de-eco",
            "reports": 1,
            "in_batches": 0,
            "oldest": T0.isoformat().replace("+00:00", "Z"),
        }
    ]
    assert document["peers"] == []
    assert set(document) == {
        "member",
        "schema",
        "reports",
        "cases",
        "outbox",
        "peers",
        "envelopes_received",
        "hash_index_size",
        "routing_log_size",
    }
