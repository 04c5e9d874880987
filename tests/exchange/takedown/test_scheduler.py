"""exchange/takedown/scheduler.py: re-check passes over real cases, a real web server, real SQL.

nl-eokm's real intake, case work, writer and database; the prober asks a real HTTP server on
loopback (``LoopbackRoute``) whose paths the test sets; a resolver whose answers the test
changes (DNS is the one fake, with the clock). Each pass is ``run_once``; the fake clock jumps
to the next check.

* A case is watched once an item is assessed illegal, checked at once, then every hour.
* Gone on ``gone_checks`` consecutive checks: a ``removed`` action (``unavailable`` for 403)
  carrying the checks as evidence, made by nl-eokm like an analyst's; or, with the "suggest"
  policy, the case in the ``confirm_removal`` queue until it comes back online.
* Re-traced to another member's country on ``move_checks`` consecutive checks: a ``moved``
  action naming that member; one odd answer is not a move.
* A new hoster in the same country: recorded, the notice count restarts.
* Every check is a ``rechecked`` routing-log entry without the URL.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from auth.manifest import Manifest
from exchange.domain import Classification
from exchange.intake import Intake
from exchange.lifecycle.model import ActionKind, Assessment, Queue, Stage
from exchange.lifecycle.record import Recorder
from exchange.lifecycle.views import CaseViews
from exchange.lifecycle.work import CaseWork
from exchange.store import routing_log, schema
from exchange.store.writer import Writer
from exchange.takedown.dispatch import CheckPool
from exchange.takedown.model import OnGone, Policy
from exchange.takedown.probe import Prober
from exchange.takedown.scheduler import Pass, Rechecker
from exchange.takedown.views import TakedownViews
from exchange.transfer.outgoing import Outgoing
from exchange.wire.transfer_codec import transfer_from_bytes
from routing.geoip import GeoIp
from routing.trace import Tracer
from tests.exchange.factories import FakeClock, case_of, host_in, make_submission
from tests.exchange.takedown.conftest import USER_AGENT
from tests.exchange.takedown.factories import MovingResolver
from tests.exchange.takedown.servers import LoopbackRoute, WebServer, forbidden, present, removed

NL = "nl-eokm"
HOUR = timedelta(hours=1)
NL_FORCE, NL_LEASEWEB, DE_HETZNER = "185.107.56.1", "37.48.64.1", "2a01:4f8::1"


@dataclass
class World:
    engine: Engine
    clock: FakeClock
    intake: Intake
    work: CaseWork
    web: WebServer
    dns: MovingResolver
    make: Callable[..., Rechecker]

    def case(self, path: str, classification: Classification = Classification.BASELINE) -> str:
        """An NL-hosted case held here, its item assessed as given."""
        url = f"http://{host_in('NL')}{path}"
        report = self.intake.submit(make_submission(url, hashes=[path]))
        case_id = case_of(self.engine, report.report_id)
        self.work.assess(case_id, [], Assessment(classification))
        return case_id

    def pass_(self, rechecker: Rechecker | None = None, *, later: timedelta = HOUR) -> Pass:
        done = (rechecker or self.make()).run_once()
        self.clock.advance(later.total_seconds())
        return done

    def stage(self, case_id: str) -> Stage:
        (state,) = (
            CaseViews(self_member=NL, engine=self.engine, clock=self.clock).case(case_id).items
        )
        return state.stage

    def log(self, kind: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [json.loads(e.detail) for e in routing_log.load_entries(conn) if e.kind == kind]


@pytest.fixture
def world(
    engine: Engine,
    writer: Writer,
    clock: FakeClock,
    intake: Intake,
    manifest: Manifest,
    geoip: GeoIp,
    web_server: WebServer,
) -> Iterator[World]:
    work = CaseWork(
        self_member=NL,
        manifest=lambda: manifest,
        writer=writer,
        clock=clock,
        recorder=Recorder(self_member=NL),
        transfers=Outgoing(self_member=NL, wake=lambda _: None),
    )
    dns = MovingResolver({host_in("NL"): (NL_FORCE,)})
    prober = Prober(
        Tracer(dns, geoip, clock),
        clock,
        user_agent=USER_AGENT,
        connect_timeout_s=2,
        read_timeout_s=2,
        route=LoopbackRoute(web_server.port),
    )
    pool = CheckPool(prober.check, clock, concurrency=4, per_host_concurrency=2)

    def make(**options: Any) -> Rechecker:
        policy = options.pop("policy", Policy())
        return Rechecker(
            self_member=NL,
            manifest=lambda: manifest,
            writer=writer,
            clock=clock,
            checks=pool,
            work=options.pop("work", work),
            policy=policy,
            **options,
        )

    yield World(engine, clock, intake, work, web_server, dns, make)
    pool.close()


def test_a_case_assessed_illegal_is_watched_and_checked_hourly(world: World) -> None:
    watched = world.case("/online.jpg")
    not_yet = world.case("/legal.jpg", Classification.NOT_ILLEGAL)
    world.web.set("/online.jpg", present())

    first = world.pass_()
    second = world.pass_(later=timedelta(minutes=10))
    third = world.pass_()  # ten minutes after the second check: not due yet

    assert (first.started, first.checked, first.online) == (1, 1, 1)
    assert (second.checked, third.checked) == (1, 0)
    shown = TakedownViews(engine=world.engine, clock=world.clock).case(watched)
    assert (shown.watch.checks, shown.watch.last_outcome, shown.watch.asn) == (2, "online", 43350)
    assert shown.watch.online_since == shown.checks[-1].at
    assert [c.status for c in shown.checks] == [200, 200]
    requests = world.web.requests
    assert {(r.method, r.host) for r in requests} == {("HEAD", host_in("NL"))}
    assert all(r.headers.get("User-Agent") == USER_AGENT for r in requests)
    assert [e["case"] for e in world.log("rechecked")] == [watched, watched]
    assert all("online.jpg" not in json.dumps(e) for e in world.log("rechecked"))
    with pytest.raises(Exception, match="not watched"):
        TakedownViews(engine=world.engine, clock=world.clock).case(not_yet)


def test_gone_on_three_checks_is_recorded_removed_with_the_evidence(world: World) -> None:
    case_id = world.case("/taken-down.jpg")
    world.web.set("/taken-down.jpg", present())
    world.pass_()
    world.web.set("/taken-down.jpg", removed(404))
    world.pass_()
    world.pass_()
    assert world.stage(case_id) is Stage.ASSESSED  # two gone checks are not enough
    world.web.set("/taken-down.jpg", removed(410))
    done = world.pass_()

    assert done.removed == 1
    detail = CaseViews(self_member=NL, engine=world.engine, clock=world.clock).case(case_id)
    (state,) = detail.items
    assert state.stage is Stage.REMOVED
    action = detail.timeline[-1]
    assert (action.member, action.body.kind) == (NL, ActionKind.REMOVED)  # type: ignore[union-attr]
    assert action.body.reference.startswith("recheck 3x [410,404,404] ")  # type: ignore[union-attr]
    # the watch ends on the next pass: nothing is checked any more
    assert world.pass_().ended == 1
    assert world.pass_().checked == 0


def test_what_the_host_does_not_say_itself_is_only_suggested(world: World) -> None:
    """403 (perhaps shown only to our User-Agent) and unreachable (perhaps our own network or
    DNS failing) prove nothing about the content: an analyst confirms, nothing closes."""
    members_only = world.case("/members-only.jpg")
    world.web.set("/members-only.jpg", forbidden())
    world.dns.table["hosting-down.example"] = ()  # resolves to nothing: unreachable
    outage = world.intake.submit(
        make_submission(f"http://{host_in('NL')}/outage.jpg", hashes=["/outage.jpg"])
    )
    outage_case = case_of(world.engine, outage.report_id)
    world.work.assess(outage_case, [], Assessment(Classification.BASELINE))
    world.web.set("/outage.jpg", present())
    world.pass_()  # online at first …
    world.dns.table[host_in("NL")] = ()  # … then our DNS answers nothing for three hours
    passes = [world.pass_() for _ in range(3)]

    assert sum(p.removed for p in passes) == 0
    assert sum(p.suggested for p in passes) == 2
    views = CaseViews(self_member=NL, engine=world.engine, clock=world.clock)
    assert world.stage(members_only) is Stage.ASSESSED
    assert world.stage(outage_case) is Stage.ASSESSED
    listed = {c.id for c in views.queue(Queue.CONFIRM_REMOVAL, limit=10)[0]}
    assert listed == {members_only, outage_case}
    assert sorted(e["action"] for e in world.log("gone-suggested")) == ["unavailable"] * 2


def test_a_watch_starts_again_when_its_case_is_illegal_again(world: World) -> None:
    """Item 0 removed ends the watch while item 1 waits unassessed; assessed illegal later,
    item 1 is watched again from nothing."""
    url = f"http://{host_in('NL')}/two-items.jpg"
    report = world.intake.submit(make_submission(url, hashes=["two-a", "two-b"]))
    case_id = case_of(world.engine, report.report_id)
    world.work.assess(case_id, [(report.report_id, 0)], Assessment(Classification.BASELINE))
    world.web.set("/two-items.jpg", removed())
    for _ in range(3):
        world.pass_()
    assert world.pass_().ended == 1
    assert world.pass_().checked == 0

    world.work.assess(case_id, [(report.report_id, 1)], Assessment(Classification.NATIONAL))
    world.web.set("/two-items.jpg", present())
    restarted = world.pass_()

    assert (restarted.started, restarted.checked, restarted.online) == (1, 1, 1)
    shown = TakedownViews(engine=world.engine, clock=world.clock).case(case_id)
    assert (shown.watch.state, shown.watch.checks, shown.watch.not_online) == ("watching", 1, 0)


def test_the_suggest_policy_asks_an_analyst_and_withdraws_when_online_again(world: World) -> None:
    case_id = world.case("/maybe-gone.jpg")
    suggest = world.make(policy=Policy(on_gone=OnGone.SUGGEST, gone_checks=2))
    world.web.set("/maybe-gone.jpg", removed())
    world.pass_(suggest)
    done = world.pass_(suggest)
    views = CaseViews(self_member=NL, engine=world.engine, clock=world.clock)

    assert (done.suggested, done.removed) == (1, 0)
    assert world.stage(case_id) is Stage.ASSESSED  # nothing recorded: an analyst decides
    assert [c.id for c in views.queue(Queue.CONFIRM_REMOVAL, limit=10)[0]] == [case_id]
    assert [e["action"] for e in world.log("gone-suggested")] == ["removed"]

    world.web.set("/maybe-gone.jpg", present())
    world.pass_(suggest)
    assert views.queue(Queue.CONFIRM_REMOVAL, limit=10)[0] == []


def test_two_checks_in_another_members_country_move_the_case(world: World) -> None:
    case_id = world.case("/moving.jpg")
    world.web.set("/moving.jpg", present())
    world.pass_()
    world.dns.table[host_in("NL")] = (DE_HETZNER,)
    one = world.pass_()
    assert (one.moved, world.stage(case_id)) == (0, Stage.ASSESSED)  # one odd answer
    two = world.pass_()

    assert two.moved == 1
    detail = CaseViews(self_member=NL, engine=world.engine, clock=world.clock).case(case_id)
    (state,) = detail.items
    assert (state.stage, state.moved_to_country, state.moved_to_member) == (
        Stage.MOVED,
        "DE",
        "de-eco",
    )
    assert detail.timeline[-1].body.reference.startswith("recheck 2x in DE ")  # type: ignore[union-attr]
    # the case goes to de-eco with the re-trace that found it there, as evidence
    with world.engine.connect() as conn:
        (row,) = conn.execute(select(schema.outbox).where(schema.outbox.c.kind == "transfer")).all()
    assert row.destination == "de-eco"
    transfer = transfer_from_bytes(row.payload)
    assert transfer.trace is not None
    assert [a.address for a in transfer.trace.addresses] == [DE_HETZNER]


def test_a_new_hoster_in_the_same_country_is_recorded_and_restarts_the_notices(
    world: World,
) -> None:
    case_id = world.case("/rehosted.jpg")
    world.web.set("/rehosted.jpg", present())
    world.pass_()
    with world.engine.begin() as conn:
        conn.execute(update(schema.takedown_watches).values(notices=2))
    world.dns.table[host_in("NL")] = (NL_LEASEWEB,)
    once = world.pass_()
    world.dns.table[host_in("NL")] = (NL_FORCE,)  # round-robin DNS over two networks …
    back = world.pass_()
    world.dns.table[host_in("NL")] = (NL_LEASEWEB,)
    world.pass_()
    done = world.pass_()  # … until two checks in a row agree

    assert (once.hoster_changed, back.hoster_changed) == (0, 0)
    assert (done.hoster_changed, done.moved) == (1, 0)
    with world.engine.connect() as conn:
        row = conn.execute(select(schema.takedown_watches)).one()
    assert (row.asn, row.organisation, row.notices, row.country) == (
        60781,
        "LeaseWeb Netherlands B.V.",
        0,
        "NL",
    )
    (changed,) = world.log("hoster-changed")
    assert (changed["case"], changed["asn"], changed["was_asn"]) == (case_id, 60781, 43350)
    assert world.stage(case_id) is Stage.ASSESSED


def test_a_refused_move_changes_nothing_and_is_tried_again(
    world: World, writer: Writer, manifest: Manifest
) -> None:
    case_id = world.case("/cannot-move.jpg")
    world.web.set("/cannot-move.jpg", present())
    world.pass_()
    world.dns.table[host_in("NL")] = (DE_HETZNER,)
    # a transfer that cannot go (here: larger than a receiver would take) refuses the move
    tight = CaseWork(
        self_member=NL,
        manifest=lambda: manifest,
        writer=writer,
        clock=world.clock,
        recorder=Recorder(self_member=NL),
        transfers=Outgoing(self_member=NL, wake=lambda _: None, max_bytes=200),
    )
    world.pass_(world.make(work=tight))
    refused = world.pass_(world.make(work=tight))

    assert refused.moved == 0
    assert [r.split(":")[0] for r in refused.refused] == [case_id]
    assert world.stage(case_id) is Stage.ASSESSED
    with world.engine.connect() as conn:
        assert conn.execute(select(schema.takedown_watches.c.country)).scalar_one() == "NL"
    assert world.pass_().moved == 1  # still in DE: tried again, and now it goes
    assert world.stage(case_id) is Stage.MOVED
