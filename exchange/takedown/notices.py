"""Notice-and-takedown: notices to hosters' abuse contacts while illegal content stays online.

One pass (``run_once``) has two halves.

**Opening notices.** The watched cases that are due (online at the last check, open items
assessed illegal here, the interval since their last notice run out, no law-enforcement or
partner hold: ``model.notice_due``) are read outside the writer in one query, in hoster order,
and cut into batches between hosters. Each batch is planned again inside one writer
transaction — so two passes (or two replicas) never open the same notice: the directory gives
each case's abuse contact (``model.notice_recipient``: the escalation contact after
``escalate_after`` notices), the cases are grouped per recipient (at most
``MAX_URLS_PER_NOTICE`` a notice), and each notice is written ``pending`` with its Message-ID
and the cases it names. A case whose hoster has no contact, or whose contact refused a notice
for good, is flagged ``no_contact`` (the analysts' no-contact queue) with a routing-log entry;
when a contact appears it is cleared, again logged.

**Sending.** Each due pending notice is rendered from its stored rows and handed to the relay
outside the writer. On acceptance ONE writer transaction records it: the notice ``sent``, the
watches' notice columns, a ``reported_to_host`` action (recipient: the address, reference: the
Message-ID) on every open illegal item of its cases — a lifecycle event the origin and the
coordinator receive — and a ``notice-sent`` routing-log entry. A temporary failure keeps it
pending with exponential back-off up to ``retry_max`` (and ends the pass's sending: the relay is
in trouble); a permanent one marks it ``failed``, logs it and flags its cases ``no_contact`` so
an analyst sees them. A crash between the relay's acceptance and that transaction re-sends the
notice under the same Message-ID.

The node runs passes every ``tick`` seconds in a background thread; the clock is a parameter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine

from common.clock import Clock
from common.periodic import Periodic
from exchange.domain import LogKind
from exchange.errors import ConfigError, ExchangeError, NoticeNotSent, NoticeRefused
from exchange.lifecycle.model import MAX_ITEMS_PER_EVENT, MAX_REF, Action, ActionKind
from exchange.lifecycle.work import CaseWork, Command
from exchange.store import notices as store
from exchange.store.writer import Tx, Writer
from exchange.takedown.directory import Directory, address_of
from exchange.takedown.mailer import Mailer
from exchange.takedown.model import Policy, notice_due, notice_recipient
from exchange.takedown.notice_model import (
    MAX_URLS_PER_NOTICE,
    Candidate,
    Notice,
    PendingNotice,
    message_id_for,
    notice_id_for,
    retry_delay,
)
from exchange.takedown.render import Sender, render

log = logging.getLogger(__name__)

BATCH = 1000  # due cases planned per writer transaction (cut between hosters)
SEND_BATCH = 200  # pending notices tried per pass
RESERVE = timedelta(minutes=10)  # a notice taken for sending is no other replica's this long

_NOT_IN_DIRECTORY = "no contact in the directory"
_REFUSED = "the contact refused a notice for good"


@dataclass(frozen=True, slots=True)
class Pass:
    """What one pass did."""

    opened: int = 0  # notices written pending
    sent: int = 0
    retried: int = 0  # temporary failures, tried again later
    failed: int = 0  # refused for good
    no_contact: int = 0  # cases newly flagged
    contact_found: int = 0  # cases whose flag was cleared


@dataclass
class _Plan:
    groups: dict[tuple[str, str, bool], list[Candidate]] = field(default_factory=dict)
    missing: list[tuple[Candidate, str]] = field(default_factory=list)
    found: list[Candidate] = field(default_factory=list)


class Notifier:
    """Opens, sends and records notices; ``start`` runs a pass every ``tick`` seconds."""

    def __init__(
        self,
        *,
        self_member: str,
        engine: Engine,
        writer: Writer,
        work: CaseWork,
        directory: Callable[[], Directory],
        mailer: Mailer,
        sender: Sender,
        policy: Policy,
        clock: Clock,
        retry_max: timedelta,
        tick: float = 10.0,
        batch: int = BATCH,
    ) -> None:
        address_of(sender.from_address, "notices.from_address")
        if sender.reply_to:
            address_of(sender.reply_to, "notices.reply_to")
        if len(message_id_for(notice_id_for("", [], clock()), sender.from_address)) > MAX_REF:
            raise ConfigError(
                "notices.from_address: its domain is too long for a Message-ID the lifecycle "
                f"can carry ({MAX_REF} characters)"
            )
        self._self = self_member
        self._engine = engine
        self._writer = writer
        self._work = work
        self._directory = directory
        self._mailer = mailer
        self._sender = sender
        self._policy = policy
        self._clock = clock
        self._retry_max = retry_max
        self._batch = batch
        self._recheck_directory: Directory | None = None  # no-contact cases last looked at
        self._recheck_at: datetime | None = None  # … with this directory, at this time
        self._loop = Periodic("ihx-notices", tick, self._round)

    def run_once(self, now: datetime | None = None) -> Pass:
        """Open the notices due at ``now`` (default: the clock's), then send what is pending."""
        at = now if now is not None else self._clock()
        opened = self.open_due(at)
        sent = self.send_pending(at)
        return Pass(
            opened=opened.opened,
            sent=sent.sent,
            retried=sent.retried,
            failed=sent.failed,
            no_contact=opened.no_contact,
            contact_found=opened.contact_found,
        )

    # -- opening ----------------------------------------------------------------------------------

    def open_due(self, now: datetime) -> Pass:
        """Write a pending notice for every recipient with due cases; flag those without one."""
        due = store.DueBy(now, now - self._policy.notice_interval, now - self._policy.lea_hold)
        directory = self._directory()
        # Cases without a contact are looked at again when the directory changes, and once an
        # interval (their hoster may have changed): not at every pass, where a large no-contact
        # backlog would be re-planned every few seconds for nothing.
        recheck = (
            directory is not self._recheck_directory
            or self._recheck_at is None
            or now >= self._recheck_at + self._policy.notice_interval
        )
        total = Pass()
        batch: list[str] = []
        last: tuple[int | None, str] | None = None
        for candidate in self._due(due, no_contact=recheck):
            hoster = (candidate.hoster.asn, candidate.hoster.organisation)
            # Cut batches between hosters, so one contact's cases share a notice.
            if len(batch) >= self._batch and hoster != last:
                total = _plus(total, self._open_batch(batch, due))
                batch = []
            batch.append(candidate.case_id)
            last = hoster
        if batch:
            total = _plus(total, self._open_batch(batch, due))
        if recheck:
            self._recheck_directory, self._recheck_at = directory, now
        return total

    def _due(self, due: store.DueBy, *, no_contact: bool) -> Iterator[Candidate]:
        with self._engine.connect() as conn:
            yield from store.due_in_hoster_order(
                conn, holder=self._self, due=due, no_contact=no_contact
            )

    def _open_batch(self, case_ids: Sequence[str], due: store.DueBy) -> Pass:
        ids = tuple(case_ids)
        return self._writer.execute(lambda tx: self._open(tx, ids, due))

    def _open(self, tx: Tx, case_ids: Sequence[str], due: store.DueBy) -> Pass:
        """Inside the writer: the batch planned from the rows as they are now, and written."""
        rows = store.candidates(tx.conn, holder=self._self, due=due, case_ids=case_ids)
        failed = store.failed_recipients(tx.conn, [c.case_id for c in rows])
        plan = self._plan(rows, failed, due.now)
        notices = self._pending(plan, due.now)
        store.insert_pending(tx.conn, notices)
        flagged = [(c, why) for c, why in plan.missing if not c.no_contact]
        store.set_no_contact(tx.conn, [c.case_id for c, _ in flagged], True, due.now)
        store.set_no_contact(tx.conn, [c.case_id for c in plan.found], False, due.now)
        for kind, why, cases in _by_hoster(flagged, plan.found):
            self._log_contact(tx, kind, why, cases, due.now)
        return Pass(opened=len(notices), no_contact=len(flagged), contact_found=len(plan.found))

    def _plan(
        self, rows: Sequence[Candidate], failed: dict[str, frozenset[str]], now: datetime
    ) -> _Plan:
        directory = self._directory()
        plan = _Plan()
        for c in rows:
            wait = notice_due(
                now=now,
                last_notice=c.last_notice_at,
                lea_at=c.lea_at,
                hold_until=c.hold_until,
                policy=self._policy,
            )
            if wait is not None:
                continue
            contact = directory.lookup(c.hoster)
            if contact is None:
                plan.missing.append((c, _NOT_IN_DIRECTORY))
                continue
            recipient, escalated = notice_recipient(contact, c.notices, self._policy)
            refused = failed.get(c.case_id, frozenset())
            if escalated and recipient.lower() in refused:
                recipient, escalated = contact.address, False  # back to the abuse desk
            if recipient.lower() in refused:
                plan.missing.append((c, _REFUSED))
                continue
            plan.groups.setdefault((contact.key, recipient, escalated), []).append(c)
            if c.no_contact:
                plan.found.append(c)
        return plan

    def _pending(
        self, plan: _Plan, now: datetime
    ) -> list[tuple[PendingNotice, Sequence[Candidate]]]:
        out: list[tuple[PendingNotice, Sequence[Candidate]]] = []
        for (contact_key, recipient, escalated), cases in plan.groups.items():
            for start in range(0, len(cases), MAX_URLS_PER_NOTICE):
                part = cases[start : start + MAX_URLS_PER_NOTICE]
                notice_id = notice_id_for(recipient, [c.case_id for c in part], now)
                notice = PendingNotice(
                    id=notice_id,
                    contact_key=contact_key,
                    recipient=recipient,
                    escalated=escalated,
                    message_id=message_id_for(notice_id, self._sender.from_address),
                    attempts=0,
                    created_at=now,
                    case_ids=tuple(c.case_id for c in part),
                )
                out.append((notice, part))
        return out

    def _log_contact(
        self, tx: Tx, kind: LogKind, why: str, cases: Sequence[Candidate], now: datetime
    ) -> None:
        hoster = cases[0].hoster
        detail: dict[str, object] = {
            "hoster": hoster.label,
            "asn": hoster.asn,
            "organisation": hoster.organisation,
            "cases": [c.case_id for c in cases],
        }
        if why:
            detail["reason"] = why
        tx.log(tx.chain.append(now, kind, member=self._self, detail=detail))

    # -- sending ----------------------------------------------------------------------------------

    def send_pending(self, now: datetime) -> Pass:
        """Try every pending notice due at ``now``; stop at the first temporary failure."""
        with self._engine.connect() as conn:
            due = store.pending(conn, now, SEND_BATCH)
        done = Pass()
        until = now + RESERVE
        for notice in due:
            if not self._reserve(notice.id, now, until):
                continue  # another replica is sending it
            outcome = self._send_one(notice, now)
            done = _plus(done, outcome)
            if outcome.retried:
                break  # the relay is in trouble: the rest wait for the next pass
        return done

    def _reserve(self, notice_id: str, now: datetime, until: datetime) -> bool:
        return self._writer.execute(lambda tx: store.reserve(tx.conn, notice_id, now, until))

    def _send_one(self, pending: PendingNotice, now: datetime) -> Pass:
        notice = self._notice_of(pending, now)
        if notice is None:
            reason = "nothing left to notify: its items closed, or held, before it was sent"
            self._writer.execute(lambda tx: store.mark_dropped(tx.conn, pending.id, reason))
            return Pass()
        try:
            self._mailer.send(
                render(notice, self._sender),
                sender=self._sender.from_address,
                recipient=pending.recipient,
            )
        except NoticeRefused as error:
            refused = error.message
            self._writer.execute(lambda tx: self._failed(tx, pending, refused))
            self._recheck_at = None  # its cases may have another address to go to: look again
            return Pass(failed=1)
        except NoticeNotSent as error:
            trouble = error.message
            self._writer.execute(lambda tx: self._retry(tx, pending, trouble, now))
            return Pass(retried=1)
        cases = [u.case_id for u in notice.urls]
        self._writer.execute(lambda tx: self._sent(tx, pending, cases))
        return Pass(sent=1)

    def _notice_of(self, pending: PendingNotice, now: datetime) -> Notice | None:
        """The notice as it is sent now: the URLs of its cases that still have open illegal
        items and may be notified now — not on hold, not within the law-enforcement wait,
        whatever happened since it was written (None: none is left), rendered for the contact
        as the directory has it now."""
        with self._engine.connect() as conn:
            still_open = store.open_illegal_items(conn, pending.case_ids, self._self)
            wait = store.waiting(conn, pending.case_ids, now, now - self._policy.lea_hold)
            urls = tuple(
                u
                for u in store.notice_urls(conn, pending.id, self._self)
                if u.case_id in still_open and u.case_id not in wait
            )
            previous = store.previous_notices(conn, pending.case_ids)
        if not urls:
            return None
        return Notice(
            id=pending.id,
            message_id=pending.message_id,
            recipient=pending.recipient,
            escalated=pending.escalated,
            created_at=pending.created_at,
            urls=urls,
            previous=previous,
            contact=self._directory().contact(pending.contact_key),
        )

    def _sent(self, tx: Tx, pending: PendingNotice, case_ids: Sequence[str]) -> None:
        """The relay accepted it: notice, watches, actions and log in this one transaction."""
        now = self._clock()
        if not store.mark_sent(tx.conn, pending.id, now):
            return  # recorded already (another replica)
        store.keep_notice_cases(tx.conn, pending.id, case_ids)
        store.note_sent(tx.conn, case_ids, now)
        action = Action(
            ActionKind.REPORTED_TO_HOST, recipient=pending.recipient, reference=pending.message_id
        )
        commands = [
            Command.act(case_id, refs[start : start + MAX_ITEMS_PER_EVENT], action)
            for case_id, refs in store.open_illegal_items(tx.conn, case_ids, self._self).items()
            for start in range(0, len(refs), MAX_ITEMS_PER_EVENT)
        ]
        items = 0
        for command, result in zip(commands, self._work.run_in(tx, commands), strict=True):
            if isinstance(result, ExchangeError):
                log.warning("reported_to_host not recorded on %s: %s", command.case_id, result)
            else:
                items += len(result.items)
        detail = {
            "notice": pending.id,
            "message_id": pending.message_id,
            "to": pending.recipient,
            "escalated": pending.escalated,
            "attempts": pending.attempts + 1,
            "cases": list(case_ids),
            "items": items,
        }
        tx.log(tx.chain.append(now, LogKind.NOTICE_SENT, member=self._self, detail=detail))
        log.info("notice sent", extra={"notice": pending.id, "cases": len(case_ids)})

    def _retry(self, tx: Tx, pending: PendingNotice, error: str, now: datetime) -> None:
        attempts = pending.attempts + 1
        next_at = now + retry_delay(attempts, self._retry_max)
        store.mark_retry(tx.conn, pending.id, next_at, error)
        log.warning(
            "notice not sent, trying again at %s: %s",
            next_at.isoformat(),
            error,
            extra={"notice": pending.id, "attempts": attempts},
        )

    def _failed(self, tx: Tx, pending: PendingNotice, error: str) -> None:
        now = self._clock()
        if not store.mark_failed(tx.conn, pending.id, error):
            return
        store.set_no_contact(tx.conn, pending.case_ids, True, now)
        detail = {
            "notice": pending.id,
            "message_id": pending.message_id,
            "to": pending.recipient,
            "error": error,
            "cases": list(pending.case_ids),
        }
        tx.log(tx.chain.append(now, LogKind.NOTICE_FAILED, member=self._self, detail=detail))
        log.error("notice refused for good: %s", error, extra={"notice": pending.id})

    # -- in the background --------------------------------------------------------------------

    def start(self) -> None:
        """Run a pass every ``tick`` seconds until ``stop``."""
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def _round(self) -> None:
        done = self.run_once()
        if done.opened or done.sent or done.failed or done.no_contact:
            log.info(
                "notice pass",
                extra={
                    "opened": done.opened,
                    "sent": done.sent,
                    "retried": done.retried,
                    "failed": done.failed,
                    "no_contact": done.no_contact,
                },
            )


def _plus(a: Pass, b: Pass) -> Pass:
    return Pass(
        a.opened + b.opened,
        a.sent + b.sent,
        a.retried + b.retried,
        a.failed + b.failed,
        a.no_contact + b.no_contact,
        a.contact_found + b.contact_found,
    )


def _by_hoster(
    flagged: Sequence[tuple[Candidate, str]], found: Sequence[Candidate]
) -> list[tuple[LogKind, str, list[Candidate]]]:
    """The routing-log entries of a batch: one per kind, reason and hoster, in order."""
    out: dict[tuple[LogKind, str, int | None, str], list[Candidate]] = {}
    for c, why in flagged:
        out.setdefault((LogKind.NO_CONTACT, why, c.hoster.asn, c.hoster.organisation), []).append(c)
    for c in found:
        key = (LogKind.CONTACT_FOUND, "", c.hoster.asn, c.hoster.organisation)
        out.setdefault(key, []).append(c)
    return [(kind, why, cases) for (kind, why, _, _), cases in out.items()]
