"""exchange/lifecycle/retention.py: closed cases past the retention period are anonymised.

nl-eokm's real intake, case work, writer and database, with a fake clock that jumps weeks:
NL-hosted reports open cases held here; closing them (assessed, removed) starts the retention
period. A purge overwrites URL, key, notes, hashes and the wire report's identifying fields,
retracts this node's hash sightings (here and, by announcement, at its peers), keeps the
classification, countries, hoster and every time, and is itself one ``anonymised`` routing-log
entry — after which the log still verifies against a checkpoint signed before the purge.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, Table, delete, select

from auth.manifest import Manifest
from exchange.checkpoints import Checkpointer, verify_log
from exchange.domain import Classification, LogKind
from exchange.intake import Intake
from exchange.lifecycle.model import Action, ActionKind, Assessment, ItemRef, ItemState, Stage
from exchange.lifecycle.record import Recorder
from exchange.lifecycle.retention import Purge, Retention
from exchange.lifecycle.views import CaseViews
from exchange.lifecycle.work import CaseWork
from exchange.ops.verify import verify_report
from exchange.store import lifecycle as lifecycle_store
from exchange.store import routing_log, schema
from exchange.store.retention import ZERO_KEY
from exchange.store.writer import Writer
from exchange.wire.codec import announcement_from_bytes, parse_report
from tests.exchange.factories import (
    FakeClock,
    case_here,
    content_hash,
    make_submission,
    report_place,
    signing_key,
    table_counts,
    url_in,
)
from tests.integration.support import wait_until

NL = "nl-eokm"
DAYS = 30


@dataclass
class World:
    engine: Engine
    writer: Writer
    clock: FakeClock
    intake: Intake
    work: CaseWork
    manifest: Manifest

    def retention(self, days: int = DAYS, **options: object) -> Retention:
        return Retention(
            self_member=NL,
            writer=self.writer,
            engine=self.engine,
            clock=self.clock,
            retention_days=days,
            **options,  # type: ignore[arg-type]
        )

    def case(self, seed: str, *, close: bool = True, country: str = "NL") -> tuple[str, str]:
        """A case held here (an NL-hosted report of two items), closed (removed) unless not;
        (its id, or "" for a report sent to its holder, and the report's id)."""
        result = self.intake.submit(
            make_submission(
                url_in(country, f"/{seed}.jpg"),
                hashes=[f"{seed}-1", f"{seed}-2"],
                notes=f"found via https://forum.example/{seed}",
            )
        )
        case_id = case_here(self.engine, result.report_id) or ""  # "": sent to its holder
        if close:
            self.work.assess(case_id, [], Assessment(Classification.BASELINE))
            self.work.act(case_id, [], Action(ActionKind.REMOVED))
        return case_id, result.report_id

    def rows(self, table: Table, **where: object) -> list[Any]:
        stmt = select(table)
        for name, value in where.items():
            stmt = stmt.where(table.c[name] == value)
        with self.engine.connect() as conn:
            return list(conn.execute(stmt).all())

    def row(self, table: Table, **where: object) -> Any:
        (one,) = self.rows(table, **where)
        return one

    def count(self, table: Table, **where: object) -> int:
        return len(self.rows(table, **where))

    def log(self, kind: str) -> list[dict[str, object]]:
        with self.engine.connect() as conn:
            return [json.loads(e.detail) for e in routing_log.load_entries(conn) if e.kind == kind]

    def log_verdict(self) -> tuple[bool, int]:
        with self.engine.connect() as conn:
            verdict = verify_log(
                list(routing_log.load_entries(conn)),
                routing_log.load_checkpoints(conn, NL),
                self.manifest,
            )
        return verdict.ok, verdict.checkpoints


@pytest.fixture
def world(
    engine: Engine, writer: Writer, clock: FakeClock, intake: Intake, manifest: Manifest
) -> World:
    work = CaseWork(
        self_member=NL,
        manifest=lambda: manifest,
        writer=writer,
        clock=clock,
        recorder=Recorder(self_member=NL),
    )
    return World(engine, writer, clock, intake, work, manifest)


def checkpoint(world: World) -> None:
    Checkpointer(
        member=NL,
        key=signing_key(NL),
        writer=world.writer,
        clock=world.clock,
        every=1,
        interval=60,
    ).checkpoint_now()


# -- what is anonymised, what is kept ---------------------------------------------------------


def test_a_case_closed_longer_than_the_period_is_anonymised(world: World) -> None:
    old, old_report = world.case("old")
    world.clock.advance(days(DAYS + 1))
    recent, _ = world.case("recent")  # closed just now
    still_open, _ = world.case("open", close=False)
    checkpoint(world)
    states_before = _states(world, old)
    report_before = parse_report(world.row(schema.reports, id=old_report).wire)

    done = world.retention().purge()

    now = world.clock()
    assert done == Purge(
        DAYS, now - timedelta(days=DAYS), (old,), (old_report,), sightings_retracted=2
    )
    case = world.row(schema.cases, id=old)
    assert (case.url, case.url_key, case.anonymised_at) == ("", ZERO_KEY, now)
    assert (case.status, case.hosting_country) == ("closed", "NL")
    report = world.row(schema.reports, id=old_report)
    assert (report.url, report.url_key, report.notes) == ("", ZERO_KEY, "")
    assert report.anonymised_at == now
    assert (report.hosting_country, report.decision_member) == ("NL", NL)

    # the wire report: nothing that leads to the content or the site, the statistics kept
    wire = parse_report(report.wire)
    assert (wire.url, wire.url_key, wire.notes, wire.trace.host) == ("", b"", "", "")
    assert [list(i.hashes) for i in wire.items] == [[], []]
    assert [i.classification for i in wire.items] == [i.classification for i in report_before.items]
    assert [a.address for a in wire.trace.addresses] == [""] * len(report_before.trace.addresses)
    assert [(a.country, a.asn, a.as_organization) for a in wire.trace.addresses] == [
        (a.country, a.asn, a.as_organization) for a in report_before.trace.addresses
    ]
    assert (wire.trace.country, wire.decision.member, wire.received_at) == (
        "NL",
        NL,
        report_before.received_at,
    )
    assert b"forum.example" not in report.wire
    assert content_hash("old-1").hex.encode() not in report.wire

    # hashes gone; items, states (every time of the takedown clock) and the timeline kept
    assert world.count(schema.item_hashes, report_seq=report_place(world.engine, old_report)) == 0
    assert world.count(schema.items, report_seq=report_place(world.engine, old_report)) == 2
    assert _states(world, old) == states_before
    assert world.count(schema.case_events, case_id=old) == 2

    # the other cases are untouched
    for kept in (recent, still_open):
        assert world.row(schema.cases, id=kept).anonymised_at is None
        assert world.row(schema.cases, id=kept).url != ""


def test_the_node_forgets_its_sightings_and_tells_its_peers(world: World) -> None:
    _, report_id = world.case("seen")
    assert world.count(schema.hash_index, member=NL, report_id=report_id) == 2
    announced = world.count(schema.announcements)
    world.clock.advance(days(DAYS + 1))

    world.retention().purge()

    assert world.count(schema.hash_index, report_id=report_id) == 0
    with world.engine.connect() as conn:
        rows = conn.execute(
            select(schema.announcements.c.payload).order_by(schema.announcements.c.seq)
        ).scalars()
        queued = [announcement_from_bytes(p) for p in rows][announced:]
    assert sorted(str(k.hash) for k in queued) == sorted(
        str(content_hash(s)) for s in ("seen-1", "seen-2")
    )
    assert all(k.retracted and k.member == NL and k.report_id == report_id for k in queued)


def test_a_hash_a_live_case_still_carries_stays_seen(world: World) -> None:
    """The old case's sighting of a hash goes only if no open case here still carries it."""
    _, old = world.case("shared")
    world.clock.advance(days(DAYS + 1))
    live = world.intake.submit(
        make_submission(url_in("NL", "/live.jpg"), hashes=["shared-1", "live-only"])
    )
    assert world.count(schema.hash_index, member=NL, report_id=old) == 2

    world.retention().purge()

    kept = world.rows(schema.hash_index, member=NL)
    assert sorted(r.hex for r in kept) == sorted(
        content_hash(s).hex for s in ("shared-1", "live-only")
    )
    assert live.report_id  # the live report's case stays open and keeps its content seen


def test_the_purge_is_logged_and_the_log_still_verifies(world: World) -> None:
    first, first_report = world.case("a")
    second, second_report = world.case("b")
    world.clock.advance(days(DAYS + 1))
    checkpoint(world)
    world.retention().purge()
    checkpoint(world)

    (entry,) = world.log(LogKind.ANONYMISED)
    assert entry == {
        "retention_days": DAYS,
        "cutoff": (world.clock() - timedelta(days=DAYS)).isoformat(),
        "cases": 2,
        "case_ids": sorted([first, second]),
        "reports": 2,
        "report_ids": sorted([first_report, second_report]),
        "sightings_retracted": 4,
    }
    assert world.log_verdict() == (True, 2)
    # nothing more is due: a second purge changes nothing and logs nothing
    assert world.retention().purge().cases == ()
    assert len(world.log(LogKind.ANONYMISED)) == 1


def test_each_batch_is_one_transaction_and_one_entry(world: World) -> None:
    ids = sorted(world.case(s)[0] for s in ("x", "y", "z"))
    world.clock.advance(days(DAYS + 1))
    done = world.retention(batch=2).purge()
    assert sorted(done.cases) == ids
    entries = world.log(LogKind.ANONYMISED)
    assert [e["cases"] for e in entries] == [2, 1]
    assert sorted(c for e in entries for c in e["case_ids"]) == ids
    assert world.log_verdict()[0]


def test_a_dry_run_lists_what_is_due_and_changes_nothing(world: World) -> None:
    due, report_id = world.case("due")
    world.clock.advance(days(DAYS + 1))
    before = table_counts(world.engine)
    result = world.retention().purge(dry_run=True)
    assert (result.cases, result.reports, result.dry_run) == ((due,), (report_id,), True)
    assert table_counts(world.engine) == before
    assert world.row(schema.cases, id=due).anonymised_at is None


def test_retention_zero_never_anonymises(world: World) -> None:
    world.case("kept")
    world.clock.advance(days(10 * 365))
    before = table_counts(world.engine)
    assert world.retention(days=0).purge() == Purge(0, None)
    assert table_counts(world.engine) == before


def test_not_yet_due_until_the_period_has_passed(world: World) -> None:
    case_id, _ = world.case("edge")
    world.clock.advance(days(DAYS) - 1)  # one second short
    assert world.retention().purge().cases == ()
    world.clock.advance(2)
    assert world.retention().purge().cases == (case_id,)


# -- at the origin: reports sent elsewhere -------------------------------------------------------


def test_a_sent_report_is_anonymised_once_all_its_items_closed_at_the_holder(world: World) -> None:
    closed = world.case("sent-closed", close=False, country="DE")[1]
    half = world.case("sent-half", close=False, country="DE")[1]
    late = world.case("sent-late", close=False, country="DE")[1]
    queued = world.case("sent-queued", close=False, country="DE")[1]
    earlier = world.clock() + timedelta(hours=1)
    # the holder's events, as inbound writes them here: de-eco closed the items
    holder_closes(world, closed, [earlier, earlier])
    holder_closes(world, half, [earlier, None])
    holder_closes(world, late, [earlier, earlier + timedelta(days=DAYS)])
    holder_closes(world, queued, [earlier, earlier])
    receipted(world, [closed, half, late])  # queued's receipt is not back: it is sent again
    world.clock.advance(days(DAYS) + 2 * 3600)

    done = world.retention().purge()

    assert (done.cases, done.reports) == ((), (closed,))
    report = world.row(schema.reports, id=closed)
    assert (report.url, report.anonymised_at) == ("", world.clock())
    assert world.count(schema.item_hashes, report_seq=report_place(world.engine, closed)) == 0
    for kept in (half, late, queued):
        assert world.row(schema.reports, id=kept).anonymised_at is None
    (entry,) = world.log(LogKind.ANONYMISED)
    assert (entry["cases"], entry["report_ids"]) == (0, [closed])


def receipted(world: World, report_ids: list[str]) -> None:
    """The reports leave the outbox, as their holder's receipt takes them out."""
    with world.engine.begin() as conn:
        conn.execute(delete(schema.outbox).where(schema.outbox.c.report_id.in_(report_ids)))


def holder_closes(world: World, report_id: str, closed_at: list[datetime | None]) -> None:
    """Item states of a report held by de-eco, as its events leave them here: each item
    removed at its time, or still assessed (None)."""
    states = [
        ItemState(
            ItemRef(report_id, index, NL, Classification.BASELINE),
            "de-eco",
            world.clock(),
            stage=Stage.ASSESSED if at is None else Stage.REMOVED,
            closed_at=at,
        )
        for index, at in enumerate(closed_at)
    ]
    with world.engine.begin() as conn:  # the holder's case id, as its events name it
        lifecycle_store.save_states(conn, "c-" + "9" * 32, states, world.clock())


# -- what reads an anonymised case ---------------------------------------------------------------


def test_views_and_verification_say_anonymised(world: World) -> None:
    case_id, report_id = world.case("read")
    world.clock.advance(days(DAYS + 1))
    world.retention().purge()

    detail = CaseViews(self_member=NL, engine=world.engine, clock=world.clock).case(case_id)
    assert detail.anonymised
    assert detail.url == ""
    assert not detail.open
    assert [s.stage for s in detail.items] == [Stage.REMOVED, Stage.REMOVED]
    assert len(detail.timeline) == 2

    verdict = verify_report(world.engine, report_id, manifest=world.manifest, self_member=NL)
    (check,) = verdict.checks
    assert not verdict.ok
    assert check.name == "not anonymised"
    assert check.detail.startswith("anonymised at ")
    assert "under the retention period" in check.detail


# -- in the background -----------------------------------------------------------------------------


def test_the_node_purges_in_the_background(world: World) -> None:
    case_id, _ = world.case("background")
    retention = world.retention(check_interval=0.05)
    retention.start()
    try:
        world.clock.advance(days(DAYS + 1))
        wait_until(
            lambda: world.row(schema.cases, id=case_id).anonymised_at is not None,
            10,
            what="the background purge",
        )
    finally:
        retention.stop()
    assert len(world.log(LogKind.ANONYMISED)) == 1


def test_retention_zero_starts_no_thread(world: World) -> None:
    retention = world.retention(days=0, check_interval=0.05)
    retention.start()
    assert "ihx-retention" not in {t.name for t in threading.enumerate()}
    retention.stop()


# -- helpers ---------------------------------------------------------------------------------------


def days(n: float) -> float:
    """Seconds in ``n`` days (what FakeClock.advance takes)."""
    return n * 86400


def _states(world: World, case_id: str) -> list[ItemState]:
    with world.engine.connect() as conn:
        return lifecycle_store.states(conn, [case_id])[case_id]
