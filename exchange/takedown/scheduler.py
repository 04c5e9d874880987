"""The re-check scheduler: every watched case's URL checked again, and what the checks mean.

A pass (``run_once``), in three steps:

1. one writer job: watches start for held cases newly assessed illegal, end for cases with no
   open illegal item left, and up to ``batch`` due watches are *claimed* (store/takedown.py);
2. the checks run outside the writer, many at once (``dispatch.CheckPool``: global and
   per-host limits), and are recorded as they complete, a group at a time;
3. each group is one writer job: the checks stored as evidence, each watch rescheduled
   (``model.next_check_at``), and the consequences recorded as lifecycle actions in the same
   transaction, so a check and what it caused commit together:

   * gone on ``gone_checks`` consecutive checks (``model.gone_verdict``): when the host itself
     said 404/410 every time (``model.proven_gone``), a ``removed`` action with the checks as
     evidence; anything less certain (unreachable — perhaps our own network —, 401/403/451 —
     perhaps shown only to us), or ``on_gone = "suggest"``, puts the case in the
     ``confirm_removal`` queue for an analyst instead. A refused action changes nothing (a
     refused move keeps the watch's country, so the next check tries again);
   * re-traced to a country served by another member on ``move_checks`` consecutive checks (one
     odd answer from a CDN's DNS is not a move): a signed ``moved`` action on the case's open
     items, which re-assigns them (lifecycle/work.py resolves the member);
   * another country this member serves: recorded; another hoster (ASN / organisation) on
     ``move_checks`` consecutive checks (round-robin DNS is not a new hoster): recorded, the
     notice count restarts — the next notice goes to the new hoster's contact.

A pass claims at most ``per_host`` watches of one host, so one slow host cannot hold every
other host's next checks back for long.

Every check is a ``rechecked`` routing-log entry (case, outcome, status, country, ASN; never the
URL); the actions are lifecycle events every reporting member and the coordinator receive.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Protocol

from auth.manifest import Manifest
from common.clock import Clock
from exchange.domain import LogKind
from exchange.errors import ExchangeError
from exchange.lifecycle.model import Action, ActionKind
from exchange.lifecycle.work import CaseWork, Command
from exchange.ops.metrics import Metrics
from exchange.settings.sections import NoticesSection, TakedownSection
from exchange.store import holds as hold_store
from exchange.store import takedown as store
from exchange.store.takedown import CheckUpdate, Watch, WatchState
from exchange.store.writer import Tx, Writer
from exchange.takedown.model import (
    Check,
    OnGone,
    Outcome,
    Policy,
    Target,
    gone_verdict,
    proven_gone,
)
from exchange.takedown.model import next_check_at as next_at
from routing.canonical import canonicalize
from routing.decision import decide
from routing.errors import RoutingError

log = logging.getLogger(__name__)

GROUP = 200  # checks recorded per writer job


class Checks(Protocol):
    """Runs checks concurrently, yielding each as it completes (``dispatch.CheckPool``)."""

    def run(self, targets: Iterable[Target]) -> Iterator[tuple[Target, Check]]: ...


@dataclass
class Pass:
    """What one pass did (the CLI and the logs show it)."""

    started: int = 0
    checked: int = 0
    online: int = 0
    removed: int = 0
    suggested: int = 0
    moved: int = 0
    hoster_changed: int = 0
    ended: int = 0
    refused: list[str] = field(default_factory=list)  # actions the rules refused (case: why)


class Rechecker:
    def __init__(
        self,
        *,
        self_member: str,
        manifest: Callable[[], Manifest],
        writer: Writer,
        clock: Clock,
        checks: Checks,
        work: CaseWork,
        policy: Policy,
        move_checks: int = 2,
        batch: int = 1000,
        claim: timedelta = timedelta(minutes=10),
        metrics: Metrics | None = None,
        per_host: int = 8,
    ) -> None:
        self._self = self_member
        self._manifest = manifest
        self._writer = writer
        self._clock = clock
        self._checks = checks
        self._work = work
        self._policy = policy
        self._move_checks = move_checks
        self._batch = batch
        self._claim = claim
        self._metrics = metrics
        # A pass ends when its slowest host does: at most this many of one host's checks per
        # pass keep a slow host from holding every other host's next checks back.
        self._per_host = per_host
        self._stopping = threading.Event()

    def stop(self) -> None:
        """End a pass in progress after the check at hand (what is recorded stays recorded)."""
        self._stopping.set()

    def run_once(self) -> Pass:
        """One pass: start and end watches, check what is due, record what the checks mean."""
        done = Pass()
        due = self._writer.execute(lambda tx: self._claim_due(tx, done))
        by_case = {w.case_id: w for w in due}
        group: list[tuple[Watch, Check]] = []
        for target, check in self._checks.run(_targets(due)):
            group.append((by_case[target.case_id], check))
            if len(group) >= GROUP:
                self._record(group, done)
                group = []
            if self._stopping.is_set():
                break  # the unchecked ones are due again when their claim runs out
        if group:
            self._record(group, done)
        self._count(done)
        return done

    def _count(self, done: Pass) -> None:
        if self._metrics is None:
            return
        for kind in ("removed", "suggested", "moved", "hoster_changed"):
            n = getattr(done, kind)
            if n:
                self._metrics.takedown_actions.labels(kind).inc(n)

    def _claim_due(self, tx: Tx, done: Pass) -> list[Watch]:
        now = self._clock()
        new = store.unwatched(tx.conn, self._self, self._batch)
        store.start_watches(tx.conn, [(c, _host(url), country) for c, url, country in new], now)
        hold_store.refresh_watches(tx.conn, [c for c, _, _ in new])  # holds placed before
        done.started = len(new)
        done.ended = store.end_watches(tx.conn, self._self, now)
        return store.claim_due(tx.conn, now, self._claim, self._batch, per_host=self._per_host)

    def _record(self, group: Sequence[tuple[Watch, Check]], done: Pass) -> None:
        refused = self._writer.execute(lambda tx: self._record_in(tx, group, done))
        done.refused.extend(refused)

    def _record_in(self, tx: Tx, group: Sequence[tuple[Watch, Check]], done: Pass) -> list[str]:
        now = self._clock()
        ids = [w.case_id for w, _ in group]
        history = store.recent_checks(
            tx.conn, ids, max(self._policy.gone_checks, self._move_checks) - 1
        )
        illegal = store.open_illegal_items(tx.conn, self._self, ids)
        open_items = store.open_items(tx.conn, self._self, ids)
        updates: list[CheckUpdate] = []
        caused: list[tuple[int, Command]] = []  # (its update's index, the command)
        for watch, check in group:
            if self._metrics is not None:
                self._metrics.rechecks.labels(str(check.outcome)).inc()
            recent = [check, *history.get(watch.case_id, [])]
            update, command = self._judge(tx, watch, recent, illegal, open_items, done)
            if command is not None:
                caused.append((len(updates), command))
            updates.append(update)
            self._log_check(tx, watch, check)
        done.checked += len(group)
        refused = self._act(tx, group, updates, caused, done)
        store.record(tx.conn, updates, now)
        return refused

    def _act(
        self,
        tx: Tx,
        group: Sequence[tuple[Watch, Check]],
        updates: list[CheckUpdate],
        caused: Sequence[tuple[int, Command]],
        done: Pass,
    ) -> list[str]:
        """The actions the checks caused, through the lifecycle's rules. A refused one changes
        nothing: a refused move keeps the watch in its old country, so it is tried again."""
        results = self._work.run_in(tx, [command for _, command in caused])
        refused = []
        for (i, command), result in zip(caused, results, strict=True):
            kind = command.body.kind if isinstance(command.body, Action) else None
            if isinstance(result, ExchangeError):
                log.warning("re-check action refused", extra={"case": command.case_id})
                refused.append(f"{command.case_id}: {kind}: {result}")
                updates[i] = replace(updates[i], country=group[i][0].country)
            elif kind is ActionKind.MOVED:
                done.moved += 1
            else:
                done.removed += 1
        return refused

    def _judge(
        self,
        tx: Tx,
        watch: Watch,
        recent: Sequence[Check],
        illegal: dict[str, list[tuple[str, int]]],
        open_items: dict[str, list[tuple[str, int]]],
        done: Pass,
    ) -> tuple[CheckUpdate, Command | None]:
        """What one check means for its watch and case (``recent``: it first, then older)."""
        check = recent[0]
        case_id = watch.case_id
        state = watch.state
        if check.outcome is Outcome.ONLINE:
            done.online += 1
            state = WatchState.WATCHING  # back online: a pending suggestion no longer holds
        country, command = self._where(tx, watch, recent, open_items.get(case_id, []), done)
        asn, organisation, reset = self._hoster(tx, watch, recent, done)
        if command is None and illegal.get(case_id):
            verdict = gone_verdict(recent, self._policy)
            if (
                verdict is not None
                and self._policy.on_gone is OnGone.ACT
                and proven_gone(recent, self._policy)
            ):
                command = Command.act(case_id, illegal[case_id], verdict)
            elif verdict is not None and state != WatchState.SUGGESTED:
                state = WatchState.SUGGESTED
                done.suggested += 1
                self._log(tx, LogKind.REMOVAL_SUGGESTED, check, case_id, action=str(verdict.kind))
        update = CheckUpdate(
            case_id=case_id,
            check=check,
            next_check_at=next_at(watch.started_at, check.at, self._policy),
            state=state,
            country=country,
            asn=asn,
            organisation=organisation,
            reset_notices=reset,
        )
        return update, command

    def _where(
        self,
        tx: Tx,
        watch: Watch,
        recent: Sequence[Check],
        items: list[tuple[str, int]],
        done: Pass,
    ) -> tuple[str | None, Command | None]:
        """The watch's country after this check, and the move it makes, if any."""
        run = recent[: self._move_checks]
        now_in = run[0].country
        if (
            now_in is None
            or now_in == watch.country
            or len(run) < self._move_checks
            or any(c.country != now_in for c in run)
        ):
            return watch.country, None
        member = decide(now_in, self._manifest(), self._self).member
        if member == self._self or not items:
            self._log(tx, LogKind.COUNTRY_CHANGED, run[0], watch.case_id, was=watch.country or "")
            return now_in, None
        move = Action(kind=ActionKind.MOVED, moved_to_country=now_in, reference=_moved_text(run))
        return now_in, Command.act(watch.case_id, items, move, run[0].trace)

    def _hoster(
        self, tx: Tx, watch: Watch, recent: Sequence[Check], done: Pass
    ) -> tuple[int | None, str, bool]:
        """The watch's hoster after this check, and whether it changed: a known hoster changes
        only when ``move_checks`` consecutive checks agree (round-robin DNS over two networks
        must not restart the notices at every check)."""
        check = recent[0]
        if check.asn is None and not check.organisation:
            return watch.asn, watch.organisation, False  # untraced: nothing new is known
        now_at = (check.asn, check.organisation)
        if watch.asn is None and not watch.organisation:
            return check.asn, check.organisation, False  # the first hoster seen
        run = recent[: self._move_checks]
        if (
            now_at == (watch.asn, watch.organisation)
            or len(run) < self._move_checks
            or any((c.asn, c.organisation) != now_at for c in run)
        ):
            return watch.asn, watch.organisation, False
        done.hoster_changed += 1
        self._log(
            tx,
            LogKind.HOSTER_CHANGED,
            check,
            watch.case_id,
            was_asn=watch.asn,
            was_organisation=watch.organisation,
        )
        return check.asn, check.organisation, True

    def _log_check(self, tx: Tx, watch: Watch, check: Check) -> None:
        self._log(
            tx,
            LogKind.RECHECKED,
            check,
            watch.case_id,
            outcome=str(check.outcome),
            status=check.status,
            address=check.address,
            redirects=check.redirects,
            elapsed_ms=check.elapsed_ms,
            detail=check.detail,
        )

    def _log(self, tx: Tx, kind: LogKind, check: Check, case_id: str, **detail: object) -> None:
        tx.log(
            tx.chain.append(
                self._clock(),
                kind,
                member=self._self,
                country=check.country,
                detail={"case": case_id, "asn": check.asn, **detail},
            )
        )


def _targets(due: Sequence[Watch]) -> list[Target]:
    return [Target(w.case_id, w.url, w.host) for w in due]


def _host(url: str) -> str:
    try:
        return canonicalize(url).host
    except RoutingError:
        return ""  # an anonymised or unparsable URL: the check will say so


def _moved_text(run: Sequence[Check]) -> str:
    first, last = run[-1].at, run[0].at
    return (
        f"recheck {len(run)}x in {run[0].country} {first:%Y-%m-%dT%H:%MZ}..{last:%Y-%m-%dT%H:%MZ}"
    )


def policy_from(t: TakedownSection, n: NoticesSection) -> Policy:
    """The ``Policy`` the ``[takedown]`` and ``[notices]`` sections describe."""
    return Policy(
        first_interval=timedelta(seconds=t.first_interval_s),
        first_period=timedelta(seconds=t.first_period_s),
        interval=timedelta(seconds=t.interval_s),
        gone_checks=t.gone_checks,
        on_gone=OnGone(t.on_gone),
        notice_interval=timedelta(seconds=n.interval_s),
        escalate_after=n.escalate_after,
        lea_hold=timedelta(seconds=n.lea_hold_s),
    )
