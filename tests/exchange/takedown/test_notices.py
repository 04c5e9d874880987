"""exchange/takedown/notices.py: the notifier against a real relay, writer and database.

nl-eokm's real intake opens NL-hosted cases (held here), its case work assesses them, and a
watch row says each is online at AS64500 (the re-check scheduler's job, written here by the
test factory). The abuse-contact directory is a real file; the relay is aiosmtpd on 127.0.0.1
recording what it accepts; the clock is fake and only moves when a test moves it.

Shown: one notice per contact naming its due cases, recorded as sent together with the watch's
notice columns, a ``reported_to_host`` action (reference: the Message-ID) and a routing-log
entry; no new notice within the interval, a reminder after it, the escalation contact after
``escalate_after``; law enforcement's hold and a partner's hold delay it; no contact → the
no-contact queue, cleared when the directory gains one; a 4xx is retried with back-off under the
same Message-ID; a 5xx fails the notice and puts the case back to analysts; STARTTLS and AUTH
end to end; a relay without STARTTLS gets nothing; passes run in the background.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, Table, select, update

from auth.manifest import Manifest
from exchange.domain import Classification, LogKind
from exchange.errors import ConfigError
from exchange.intake import Intake
from exchange.lifecycle.model import (
    Action,
    ActionKind,
    Assessment,
    EventKind,
    Queue,
    Stage,
)
from exchange.lifecycle.record import Recorder
from exchange.lifecycle.views import CaseViews
from exchange.lifecycle.work import CaseWork
from exchange.store import routing_log, schema
from exchange.store.writer import Writer
from exchange.takedown.directory import DirectoryFile
from exchange.takedown.holds import Holds
from exchange.takedown.mailer import Mailer, Relay
from exchange.takedown.model import Policy
from exchange.takedown.notices import Notifier, Pass
from exchange.takedown.render import Sender
from tests.exchange.factories import FakeClock, case_of, make_submission, url_in
from tests.exchange.takedown.factories import insert_watches, watch_row
from tests.exchange.takedown.smtp import RelayTls, SmtpRelay
from tests.integration.support import wait_until

NL = "nl-eokm"
H = timedelta(hours=1)
ABUSE = "abuse@hosting.example.nl"
LEGAL = "legal@hosting.example.nl"
OTHER = "abuse@rechenzentrum.example.de"
FROM = "notices@hotline.example.nl"
POLICY = Policy(notice_interval=24 * H, escalate_after=2, lea_hold=6 * H)
DIRECTORY = f"""
[[contact]]
asn = 64500
address = "{ABUSE}"
name = "Example Hosting"
language = "nl"
escalation = "{LEGAL}"

[[contact]]
asn = 64501
address = "{OTHER}"
language = "de"
"""


@dataclass
class World:
    engine: Engine
    writer: Writer
    clock: FakeClock
    intake: Intake
    work: CaseWork
    views: CaseViews
    relay: SmtpRelay
    directory: Path
    made: list[Notifier] = field(default_factory=list)

    def notifier(self, mailer: Mailer | None = None, **options: Any) -> Notifier:
        notifier = Notifier(
            self_member=NL,
            engine=self.engine,
            writer=self.writer,
            work=self.work,
            directory=DirectoryFile(self.directory).current,
            mailer=mailer or Mailer(Relay("127.0.0.1", self.relay.port, starttls=False, timeout=5)),
            sender=Sender("Meldpunt Kinderporno (EOKM)", FROM),
            policy=options.pop("policy", POLICY),
            clock=self.clock,
            retry_max=options.pop("retry_max", H),
            **options,
        )
        self.made.append(notifier)
        return notifier

    def case(self, seed: str, *, items: int = 1, **watch: object) -> str:
        """An NL-hosted case held here, assessed baseline, watched and online."""
        result = self.intake.submit(
            make_submission(
                url_in("NL", f"/{seed}.jpg"), hashes=[f"{seed}-{i}" for i in range(items)]
            )
        )
        case_id = case_of(self.engine, result.report_id)
        self.work.assess(case_id, [], Assessment(Classification.BASELINE))
        insert_watches(self.engine, watch_row(case_id, started_at=self.clock(), **watch))
        return case_id

    def rows(self, table: Table, **where: object) -> list[Any]:
        stmt = select(table)
        for name, value in where.items():
            stmt = stmt.where(table.c[name] == value)
        with self.engine.connect() as conn:
            return list(conn.execute(stmt).all())

    def watch(self, case_id: str) -> Any:
        (row,) = self.rows(schema.takedown_watches, case_id=case_id)
        return row

    def log(self, kind: LogKind) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [json.loads(e.detail) for e in routing_log.load_entries(conn) if e.kind == kind]

    def queue(self, queue: Queue) -> list[str]:
        return [c.id for c in self.views.queue(queue)[0]]


@pytest.fixture
def world(
    engine: Engine,
    writer: Writer,
    clock: FakeClock,
    intake: Intake,
    manifest: Manifest,
    relay: SmtpRelay,
    tmp_path: Path,
) -> Iterator[World]:
    work = CaseWork(
        self_member=NL,
        manifest=lambda: manifest,
        writer=writer,
        clock=clock,
        recorder=Recorder(self_member=NL),
    )
    directory = tmp_path / "abuse-contacts.toml"
    directory.write_text(DIRECTORY, encoding="utf-8")
    views = CaseViews(self_member=NL, engine=engine, clock=clock)
    w = World(engine, writer, clock, intake, work, views, relay, directory)
    yield w
    for notifier in w.made:
        notifier.stop()


def payload_names(msg: EmailMessage) -> list[str | None]:
    payload = msg.get_payload()
    assert isinstance(payload, list)
    return [p.get_filename() for p in payload]


def notice_json(msg: EmailMessage) -> dict[str, Any]:
    (part,) = [p for p in msg.iter_attachments() if p.get_filename() == "notice.json"]
    content = part.get_content()
    return json.loads(content if isinstance(content, str) else content.decode())


# -- a notice, and what it records ------------------------------------------------------------


def test_a_due_case_gets_a_notice_recorded_as_reported_to_host(world: World) -> None:
    one = world.case("one", items=2)
    two = world.case("two")
    now = world.clock()
    done = world.notifier().run_once()
    assert done == Pass(opened=1, sent=1)

    (msg,) = world.relay.parsed()
    (notice,) = world.rows(schema.takedown_notices)
    assert msg["To"] == ABUSE
    assert world.relay.messages[0].rcpt_tos == (ABUSE,)
    assert msg["Message-ID"] == notice.message_id == f"<{notice.id}@hotline.example.nl>"
    assert msg["Subject"].startswith("Melding:")  # the contact's language
    assert payload_names(msg) == [None, "report.txt", "report.txt", "notice.json"]
    assert {u["case"] for u in notice_json(msg)["urls"]} == {one, two}
    assert (notice.status, notice.attempts, notice.sent_at, notice.escalated) == (
        "sent",
        1,
        now,
        False,
    )
    assert {(r.case_id, r.asn, r.items) for r in world.rows(schema.takedown_notice_cases)} == {
        (one, 64500, 2),
        (two, 64500, 1),
    }

    watch = world.watch(one)
    assert (watch.notices, watch.first_notice_at, watch.last_notice_at) == (1, now, now)
    detail = world.views.case(one)
    assert {s.stage for s in detail.items} == {Stage.ACTIONED}
    assert {(s.host_recipient, s.host_notice_at) for s in detail.items} == {(ABUSE, now)}
    last = detail.timeline[-1]
    assert last.kind is EventKind.ACTION
    assert len(last.items) == 2
    assert last.body == Action(
        ActionKind.REPORTED_TO_HOST, recipient=ABUSE, reference=notice.message_id
    )

    (logged,) = world.log(LogKind.NOTICE_SENT)
    assert logged["notice"] == notice.id
    assert logged["message_id"] == notice.message_id
    assert (logged["to"], logged["items"], sorted(logged["cases"])) == (
        ABUSE,
        3,
        sorted([one, two]),
    )
    assert len(world.log(LogKind.ACTED)) == 2  # one reported_to_host event per case

    # the event goes to the coordinator (and every reporting member) through the outbox
    outbox = world.rows(schema.outbox, kind="event")
    assert {r.destination for r in outbox} == {"inhope"}


def test_one_notice_per_contact(world: World) -> None:
    world.case("a")
    world.case("b")
    german = world.case("c", asn=64501, organisation="Beispiel Rechenzentrum GmbH")
    assert world.notifier().run_once() == Pass(opened=2, sent=2)
    by_recipient = {m["To"]: m for m in world.relay.parsed()}
    assert set(by_recipient) == {ABUSE, OTHER}
    assert len(notice_json(by_recipient[ABUSE])["urls"]) == 2
    assert [u["case"] for u in notice_json(by_recipient[OTHER])["urls"]] == [german]
    assert by_recipient[OTHER]["Subject"].startswith("Hinweis:")


def test_a_notice_every_interval_while_online_then_the_escalation_contact(world: World) -> None:
    case_id = world.case("a")
    notifier = world.notifier()
    first = world.clock()
    assert notifier.run_once().sent == 1
    world.clock.advance(23 * 3600)
    assert notifier.run_once() == Pass()  # within the interval: nothing
    world.clock.advance(3600)
    assert notifier.run_once().sent == 1
    second = world.relay.parsed()[-1]
    assert second["To"] == ABUSE
    assert "1 eerdere melding(en)" in second.get_body().get_content()  # type: ignore[union-attr]
    world.clock.advance(24 * 3600)
    assert notifier.run_once().sent == 1  # escalate_after = 2 notices to the abuse desk
    third = world.relay.parsed()[-1]
    assert third["To"] == LEGAL
    assert third["Subject"].startswith("Escalatie:")
    watch = world.watch(case_id)
    assert (watch.notices, watch.first_notice_at, watch.last_notice_at) == (3, first, world.clock())
    assert [
        n.escalated for n in sorted(world.rows(schema.takedown_notices), key=lambda n: n.created_at)
    ] == [
        False,
        False,
        True,
    ]
    states = world.views.case(case_id).items
    assert {(s.host_recipient, s.host_notice_at) for s in states} == {(LEGAL, first)}


def test_law_enforcement_first(world: World) -> None:
    case_id = world.case("a")
    world.work.act(case_id, [], Action(ActionKind.REPORTED_TO_LEA, partner="nl-police"))
    notifier = world.notifier()
    assert notifier.run_once() == Pass()
    world.clock.advance(6 * 3600 - 1)
    assert notifier.run_once() == Pass()
    assert world.rows(schema.takedown_notices) == []
    world.clock.advance(1)
    assert notifier.run_once().sent == 1


def test_a_partners_hold_delays_the_notice(world: World) -> None:
    world.case("a", hold_until=world.clock() + 2 * H)
    notifier = world.notifier()
    assert notifier.run_once() == Pass()
    world.clock.advance(2 * 3600)
    assert notifier.run_once().sent == 1


def test_cases_not_online_or_not_illegal_get_no_notice(world: World) -> None:
    world.case("gone", last_outcome="gone")
    world.case("done", state="done")
    result = world.intake.submit(make_submission(url_in("NL", "/unassessed.jpg")))
    insert_watches(world.engine, watch_row(case_of(world.engine, result.report_id)))
    assert world.notifier().run_once() == Pass()
    assert world.relay.messages == []
    assert world.rows(schema.takedown_notices) == []


# -- no contact ---------------------------------------------------------------------------------


def test_no_contact_is_queued_and_logged_once_and_clears_when_one_appears(world: World) -> None:
    case_id = world.case("a", asn=64999, organisation="Unknown Hosting")
    notifier = world.notifier()
    assert notifier.run_once() == Pass(no_contact=1)
    assert notifier.run_once() == Pass()  # still none: nothing new, nothing logged again
    assert world.relay.messages == []
    assert world.watch(case_id).no_contact is True
    assert world.queue(Queue.NO_CONTACT) == [case_id]
    (logged,) = world.log(LogKind.NO_CONTACT)
    assert logged == {
        "hoster": "AS64999 Unknown Hosting",
        "asn": 64999,
        "organisation": "Unknown Hosting",
        "cases": [case_id],
        "reason": "no contact in the directory",
    }

    with world.directory.open("a", encoding="utf-8") as f:
        f.write(
            '\n[[contact]]\norganisation = "unknown hosting"\naddress = "abuse@unknown.example"\n'
        )
    assert notifier.run_once() == Pass(opened=1, sent=1, contact_found=1)
    assert world.relay.parsed()[0]["To"] == "abuse@unknown.example"
    assert world.watch(case_id).no_contact is False
    assert world.queue(Queue.NO_CONTACT) == []
    assert [e["cases"] for e in world.log(LogKind.CONTACT_FOUND)] == [[case_id]]


# -- the relay says no ------------------------------------------------------------------------


def test_a_4xx_is_retried_with_back_off_under_the_same_message_id(world: World) -> None:
    case_id = world.case("a")
    world.relay.data_replies.append("451 4.3.0 try again later")
    notifier = world.notifier()
    assert notifier.run_once() == Pass(opened=1, retried=1)
    (notice,) = world.rows(schema.takedown_notices)
    assert (notice.status, notice.attempts) == ("pending", 1)
    assert notice.next_attempt_at == world.clock() + timedelta(seconds=30)
    assert "451 4.3.0 try again later" in notice.error
    assert world.views.case(case_id).items[0].stage is Stage.ASSESSED  # nothing recorded

    world.clock.advance(29)
    assert notifier.run_once() == Pass()  # not yet; and no second notice for the case
    world.clock.advance(1)
    assert notifier.run_once() == Pass(sent=1)
    (refused,) = world.relay.refused
    (accepted,) = world.relay.messages
    assert refused.message["Message-ID"] == accepted.message["Message-ID"] == notice.message_id
    assert refused.message["Date"] == accepted.message["Date"]
    (notice,) = world.rows(schema.takedown_notices)
    assert (notice.status, notice.attempts, notice.error) == ("sent", 2, None)


def test_back_off_doubles_up_to_retry_max(world: World) -> None:
    world.case("a")
    world.relay.data_replies.extend(["421 4.4.5 busy"] * 4)
    notifier = world.notifier(retry_max=timedelta(seconds=90))
    delays = []
    for _ in range(4):
        assert notifier.run_once().retried == 1
        (notice,) = world.rows(schema.takedown_notices)
        delays.append((notice.next_attempt_at - world.clock()).total_seconds())
        world.clock.set(notice.next_attempt_at)
    assert delays == [30, 60, 90, 90]
    assert notifier.run_once().sent == 1


def test_a_5xx_fails_the_notice_and_puts_the_case_back(world: World) -> None:
    case_id = world.case("a")
    world.relay.rcpt_replies[ABUSE] = "550 5.1.1 no such mailbox"
    notifier = world.notifier()
    assert notifier.run_once() == Pass(opened=1, failed=1)
    (notice,) = world.rows(schema.takedown_notices)
    assert notice.status == "failed"
    assert "550 5.1.1 no such mailbox" in notice.error
    assert world.watch(case_id).no_contact is True
    assert world.queue(Queue.NO_CONTACT) == [case_id]
    assert world.queue(Queue.UNACTIONED) == [case_id]  # not reported to the host
    (logged,) = world.log(LogKind.NOTICE_FAILED)
    assert logged["to"] == ABUSE
    assert logged["cases"] == [case_id]

    # the same mailbox is not tried again, even after the interval …
    world.clock.advance(48 * 3600)
    assert notifier.run_once() == Pass()
    assert len(world.rows(schema.takedown_notices)) == 1
    # … until the directory names another
    world.directory.write_text(
        DIRECTORY.replace(ABUSE, "abuse-desk@hosting.example.nl"), encoding="utf-8"
    )
    assert notifier.run_once() == Pass(opened=1, sent=1, contact_found=1)
    assert world.relay.parsed()[0]["To"] == "abuse-desk@hosting.example.nl"
    assert world.queue(Queue.NO_CONTACT) == []


def test_a_relay_without_starttls_gets_nothing_and_the_notice_waits(world: World) -> None:
    world.case("a")
    strict = Mailer(Relay("127.0.0.1", world.relay.port, starttls=True, timeout=5))
    assert world.notifier(strict).run_once() == Pass(opened=1, retried=1)
    (notice,) = world.rows(schema.takedown_notices)
    assert notice.status == "pending"
    assert "does not offer STARTTLS" in notice.error
    assert world.relay.attempts == 0


def test_starttls_and_auth_end_to_end(
    world: World, make_relay: Callable[..., SmtpRelay], relay_tls: RelayTls
) -> None:
    secure = make_relay(tls=relay_tls, users={"notices": "s3cret"})
    world.case("a")
    mailer = Mailer(
        Relay("127.0.0.1", secure.port, username="notices", password="s3cret", timeout=5),
        ssl_context=relay_tls.client_context(),
    )
    assert world.notifier(mailer).run_once().sent == 1
    (got,) = secure.messages
    assert got.tls
    assert got.login == "notices"
    assert got.rcpt_tos == (ABUSE,)


# -- crashes and races ------------------------------------------------------------------------


def test_a_notice_written_before_a_crash_goes_out_under_its_message_id(world: World) -> None:
    case_id = world.case("a")
    assert world.notifier().open_due(world.clock()) == Pass(opened=1)
    (written,) = world.rows(schema.takedown_notices)
    assert written.status == "pending"
    # the node restarts: a new notifier finds the pending notice and sends it as written
    assert world.notifier().run_once() == Pass(sent=1)
    (msg,) = world.relay.parsed()
    assert msg["Message-ID"] == written.message_id
    assert world.watch(case_id).notices == 1


def test_a_notice_whose_items_closed_before_sending_is_dropped(world: World) -> None:
    case_id = world.case("a")
    notifier = world.notifier()
    notifier.open_due(world.clock())
    world.work.act(case_id, [], Action(ActionKind.REMOVED))
    assert notifier.run_once() == Pass()
    (notice,) = world.rows(schema.takedown_notices)
    assert notice.status == "dropped"  # no address refused anything
    assert "nothing left to notify" in notice.error
    assert world.relay.attempts == 0


def test_a_bad_from_address_is_refused_at_start(world: World) -> None:
    with pytest.raises(ConfigError, match=r"notices\.from_address"):
        Notifier(
            self_member=NL,
            engine=world.engine,
            writer=world.writer,
            work=world.work,
            directory=DirectoryFile(world.directory).current,
            mailer=Mailer(Relay("127.0.0.1", world.relay.port)),
            sender=Sender("EOKM", "not an address"),
            policy=POLICY,
            clock=world.clock,
            retry_max=H,
        )


def test_passes_run_in_the_background(world: World) -> None:
    world.case("a")
    notifier = world.notifier(tick=0.05)
    notifier.start()
    wait_until(lambda: len(world.relay.messages) == 1, what="the background pass sent the notice")
    notifier.stop()
    assert len(world.rows(schema.takedown_notices, status="sent")) == 1


def test_an_escalation_contact_that_refuses_falls_back_to_the_abuse_desk(world: World) -> None:
    world.case("a", notices=2, last_notice_at=world.clock() - 24 * H)
    world.relay.rcpt_replies[LEGAL] = "550 5.1.1 no such mailbox"
    notifier = world.notifier()
    assert notifier.run_once() == Pass(opened=1, failed=1)
    assert notifier.run_once() == Pass(opened=1, sent=1, contact_found=1)
    (msg,) = world.relay.parsed()
    assert msg["To"] == ABUSE
    assert msg["Subject"].startswith("Melding:")  # an ordinary notice, not an escalation


def test_no_contact_cases_are_looked_at_again_after_the_interval_not_every_pass(
    world: World,
) -> None:
    case_id = world.case("a", asn=64999, organisation="Unknown Hosting")
    notifier = world.notifier()
    assert notifier.run_once() == Pass(no_contact=1)
    # a re-trace finds the content at a hoster the directory knows
    with world.engine.begin() as conn:
        conn.execute(
            update(schema.takedown_watches)
            .where(schema.takedown_watches.c.case_id == case_id)
            .values(asn=64500, organisation="Example Hosting B.V.")
        )
    world.clock.advance(3600)
    assert notifier.run_once() == Pass()  # flagged cases wait for the next look
    world.clock.advance(23 * 3600)
    assert notifier.run_once() == Pass(opened=1, sent=1, contact_found=1)
    assert world.relay.parsed()[0]["To"] == ABUSE


def test_a_case_closed_before_sending_leaves_the_notice_and_its_figures(world: World) -> None:
    gone = world.case("gone")
    kept = world.case("kept")
    notifier = world.notifier()
    notifier.open_due(world.clock())
    world.work.act(gone, [], Action(ActionKind.REMOVED))
    assert notifier.run_once() == Pass(sent=1)
    (msg,) = world.relay.parsed()
    assert [u["case"] for u in notice_json(msg)["urls"]] == [kept]
    assert [r.case_id for r in world.rows(schema.takedown_notice_cases)] == [kept]
    assert world.watch(gone).notices == 0
    assert world.watch(kept).notices == 1


def test_a_hold_placed_while_a_notice_waits_to_be_retried_holds_it(world: World) -> None:
    case_id = world.case("a")
    world.relay.data_replies.append("451 4.3.0 try again later")
    notifier = world.notifier()
    assert notifier.run_once() == Pass(opened=1, retried=1)
    holds = Holds(writer=world.writer, engine=world.engine, clock=world.clock, self_member=NL)
    holds.hold(case_id, "nl-police", timedelta(days=7), "evidence", lambda *_: True)
    world.clock.advance(30)

    assert notifier.run_once() == Pass()  # due for a retry, but held: nothing goes
    assert world.relay.messages == []
    (notice,) = world.rows(schema.takedown_notices)
    assert notice.status == "dropped"
    assert world.watch(case_id).no_contact is False  # no address was blamed
    world.clock.advance(8 * 86400)  # the hold is over: planned and sent again
    assert notifier.run_once().sent == 1


def test_two_replicas_never_send_one_notice_twice(world: World) -> None:
    world.case("a")
    other = world.notifier()
    relay = Relay("127.0.0.1", world.relay.port, starttls=False, timeout=5)
    during: list[Pass] = []

    class Busy(Mailer):
        """Replica A's relay session, during which replica B runs its own pass."""

        def send(self, message: EmailMessage, *, sender: str, recipient: str) -> None:
            during.append(other.send_pending(world.clock()))
            super().send(message, sender=sender, recipient=recipient)

    first = world.notifier(Busy(relay))
    assert first.run_once() == Pass(opened=1, sent=1)
    assert during == [Pass()]  # B saw it taken: nothing to send
    assert len(world.relay.messages) == 1
