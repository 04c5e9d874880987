"""store/takedown.py on a real migrated database: watches start, are claimed, record checks, end.

Watches start only for held cases with an open item assessed illegal; a claim hides a due watch
until it runs out (no URL checked twice at once); a group of checks is stored as evidence and
moves each watch on — the run of not-online checks, the first time seen online, a new hoster
restarting the notice count; the takedown queues list the watched cases they flag.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import Engine, update

from exchange.domain import Classification
from exchange.lifecycle.model import Queue, Stage
from exchange.store import holds as hold_store
from exchange.store import lifecycle as lifecycle_store
from exchange.store import schema
from exchange.store import takedown as store
from exchange.store.takedown import CheckUpdate, WatchState
from exchange.takedown.model import Check, Hold, Outcome
from tests.exchange.lifecycle.factories import HOLDER
from tests.exchange.store.held_cases import NOW, SINCE, assessed_as, closed_item, item, put_case

CLAIM = timedelta(minutes=10)


def watched(engine: Engine) -> dict[str, str]:
    """Cases in every situation; watches started for those the store finds."""
    cases = {
        "illegal": put_case(engine, "illegal", [assessed_as(Classification.BASELINE)]),
        "half": put_case(engine, "half", [item(0), assessed_as(Classification.NATIONAL, 1)]),
        "unassessed": put_case(engine, "unassessed", [item()]),
        "legal": put_case(engine, "legal", [assessed_as(Classification.NOT_ILLEGAL)]),
        "closed": put_case(engine, "closed", [closed_item(closed_days_ago=1)]),
        "elsewhere": put_case(
            engine, "elsewhere", [assessed_as(Classification.BASELINE)], holder="nl-eokm"
        ),
    }
    with engine.begin() as conn:
        found = store.unwatched(conn, HOLDER, 100)
        store.start_watches(
            conn, [(c, "hosting-de.example", country) for c, _, country in found], NOW
        )
    return cases


def check(outcome: Outcome, minutes: int = 0, **changes: object) -> Check:
    values: dict[str, object] = {
        "at": NOW + timedelta(minutes=minutes),
        "outcome": outcome,
        "status": {Outcome.ONLINE: 200, Outcome.GONE: 404}.get(outcome),
        "address": "2a01:4f8::1",
        "country": "DE",
        "asn": 24940,
        "organisation": "Hetzner Online GmbH",
    }
    values.update(changes)
    return Check(**values)  # type: ignore[arg-type]


def recorded(case_id: str, c: Check, **changes: object) -> CheckUpdate:
    values: dict[str, object] = {
        "case_id": case_id,
        "check": c,
        "next_check_at": c.at + timedelta(hours=1),
        "state": WatchState.WATCHING,
        "country": c.country,
        "asn": c.asn,
        "organisation": c.organisation,
        "reset_notices": False,
    }
    values.update(changes)
    return CheckUpdate(**values)  # type: ignore[arg-type]


def test_watches_start_only_for_held_cases_with_an_open_illegal_item(engine: Engine) -> None:
    cases = watched(engine)
    with engine.connect() as conn:
        views = store.watches(conn, list(cases.values()))
        assert store.unwatched(conn, HOLDER, 100) == []  # started once, never twice
    assert set(views) == {cases["illegal"], cases["half"]}
    view = views[cases["illegal"]]
    assert (view.state, view.next_check_at, view.checks, view.country) == (
        WatchState.WATCHING,
        NOW,  # due at once: the first check is the baseline
        0,
        "DE",
    )


def test_a_claim_hides_a_due_watch_until_it_runs_out(engine: Engine) -> None:
    cases = watched(engine)
    with engine.begin() as conn:
        first = store.claim_due(conn, NOW, CLAIM, 100, per_host=100)
        again = store.claim_due(conn, NOW + CLAIM - timedelta(seconds=1), CLAIM, 100, per_host=100)
        later = store.claim_due(conn, NOW + CLAIM, CLAIM, 1, per_host=100)
    assert {w.case_id for w in first} == {cases["illegal"], cases["half"]}
    assert first[0].url.startswith("https://hosting-de.example/")
    assert again == []
    assert len(later) == 1  # the limit holds


def test_checks_are_stored_and_move_their_watch_on(engine: Engine) -> None:
    cid = watched(engine)["illegal"]
    online, gone1, gone2 = check(Outcome.ONLINE), check(Outcome.GONE, 60), check(Outcome.GONE, 120)
    with engine.begin() as conn:
        store.record(conn, [recorded(cid, online)], NOW)
        store.record(conn, [recorded(cid, gone1)], NOW)
        store.record(conn, [recorded(cid, gone2)], NOW)
    with engine.connect() as conn:
        view = store.watches(conn, [cid])[cid]
        recent = store.recent_checks(conn, [cid], 2)[cid]
    assert (view.checks, view.not_online, view.last_outcome, view.last_status) == (
        3,
        2,
        "gone",
        404,
    )
    assert view.online_since == online.at
    assert view.next_check_at == gone2.at + timedelta(hours=1)
    assert recent == [gone2, gone1]  # newest first, at most n


def test_online_again_or_a_refused_check_breaks_the_run(engine: Engine) -> None:
    cid = watched(engine)["illegal"]
    for outcome in (Outcome.GONE, Outcome.GONE, Outcome.REFUSED):
        with engine.begin() as conn:
            store.record(conn, [recorded(cid, check(outcome))], NOW)
    with engine.connect() as conn:
        assert store.watches(conn, [cid])[cid].not_online == 0


def test_a_new_hoster_restarts_the_notice_count(engine: Engine) -> None:
    cid = watched(engine)["illegal"]
    with engine.begin() as conn:
        conn.execute(update(schema.takedown_watches).values(notices=3, no_contact=True))
        store.record(conn, [recorded(cid, check(Outcome.ONLINE))], NOW)
    with engine.connect() as conn:
        kept = store.watches(conn, [cid])[cid]
    moved = check(Outcome.ONLINE, 60, asn=64500, organisation="Other Hosting")
    with engine.begin() as conn:
        store.record(conn, [recorded(cid, moved, reset_notices=True)], NOW)
    with engine.connect() as conn:
        view = store.watches(conn, [cid])[cid]
    assert (kept.notices, kept.no_contact) == (3, True)
    assert (view.notices, view.no_contact, view.asn, view.organisation) == (
        0,
        False,
        64500,
        "Other Hosting",
    )


def test_watches_end_when_no_open_illegal_item_is_left(engine: Engine) -> None:
    cases = watched(engine)
    cid = cases["illegal"]
    with engine.begin() as conn:
        states = lifecycle_store.states(conn, [cid])[cid]
        lifecycle_store.save_states(
            conn, cid, [replace(s, stage=Stage.REMOVED, closed_at=NOW) for s in states], NOW
        )
        assert store.end_watches(conn, HOLDER, NOW) == 1
        assert store.claim_due(conn, NOW, CLAIM, 100, per_host=100)[0].case_id == cases["half"]
    with engine.connect() as conn:
        assert store.watches(conn, [cid])[cid].state == WatchState.DONE
        assert store.counts(conn) == {WatchState.DONE: 1, WatchState.WATCHING: 1}


def test_the_takedown_queues_list_the_cases_they_flag(engine: Engine) -> None:
    cases = watched(engine)
    w = schema.takedown_watches.c
    with engine.begin() as conn:
        conn.execute(
            update(schema.takedown_watches)
            .where(w.case_id == cases["illegal"])
            .values(no_contact=True)
        )
        conn.execute(
            update(schema.takedown_watches)
            .where(w.case_id == cases["half"])
            .values(state=WatchState.SUGGESTED)
        )

    def listed(queue: Queue) -> list[str]:
        with engine.connect() as conn:
            rows = lifecycle_store.queue(
                conn, queue, holder=HOLDER, now=NOW, since=SINCE, after=None, limit=10
            )
            counts = lifecycle_store.queue_counts(conn, HOLDER, NOW, SINCE)
        assert counts[queue] == len(rows)
        return [r.id for r in rows]

    assert listed(Queue.NO_CONTACT) == [cases["illegal"]]
    assert listed(Queue.CONFIRM_REMOVAL) == [cases["half"]]


def test_a_claim_takes_at_most_per_host_of_one_host(engine: Engine) -> None:
    cases = watched(engine)  # both on hosting-de.example
    with engine.begin() as conn:
        first = store.claim_due(conn, NOW, CLAIM, 100, per_host=1)
        second = store.claim_due(conn, NOW, CLAIM, 100, per_host=1)
    assert len(first) == 1  # one host's share; the other waits for the next pass
    assert {w.case_id for w in first + second} == {cases["illegal"], cases["half"]}


def test_a_hold_placed_before_the_watch_starts_is_on_it(engine: Engine) -> None:
    cid = put_case(engine, "held-early", [item()])
    with engine.begin() as conn:
        hold_store.add(conn, Hold(cid, "de-bka", NOW + timedelta(days=2), "evidence", NOW))
        store.start_watches(conn, [(cid, "hosting-de.example", "DE")], NOW)
        hold_store.refresh_watches(conn, [cid])
    with engine.connect() as conn:
        assert store.watches(conn, [cid])[cid].hold_until == NOW + timedelta(days=2)
