"""A hotline's case work, scripted: the holder node in this process, its analysts in threads.

The lifecycle benches need events made *inside* a running holder node that can be killed with
SIGKILL at any instant — so no second process may write its database. This script (or, in
``bench/faults.py``, its child-node mode) builds the node with ``build_node`` and starts it,
exactly as ``ihx node run`` does, then works cases through the node's own command API
(``node.case_work``, what the Cases gRPC service calls):

  assess (baseline) → reported to law enforcement → notice to the host → removed: up to four
  events per case, each step its own call (``assess``/``act``) or, with ``bulk`` > 1, the
  next step of that many cases in one call (``case_work.run``, a tool's bulk action).

The next step of a case always comes from its stored state, so after a kill and a restart the
same job carries on where the database says the case stands — as a case-management tool would.
Analysts work in ``threads`` threads (concurrent calls meet in the writer's group commit), at
most ``rate`` events/s in all when paced. Each event is appended to the job's ack file only
AFTER its call returned (the event is committed), one ``write`` per line: a line written
survives a SIGKILL of this process, so every acknowledged event is on that list.

Jobs are files ``JOBS/N.json`` — ``{"cases": [...], "threads": 8, "bulk": 1, "rate": null |
events/s, "ack": "path"}`` — taken in order as they appear; ``JOBS/N.done`` is written when
job N is finished. ``python bench/lifecycle_driver.py --config NODE.TOML --jobs DIR`` prints
``ready`` once the node serves and runs until SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

READY = "ready"
STEPS = ("assess", "lea", "host", "removed")


class Pacer:
    """At most ``rate`` calls per second in all threads (None: as fast as they come)."""

    def __init__(self, rate: float | None) -> None:
        self._interval = 1.0 / rate if rate else 0.0
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def wait(self) -> None:
        if not self._interval:
            return
        with self._lock:
            due = max(self._next, time.monotonic())
            self._next = due + self._interval
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class AckFile:
    """Made events, one line each: ``event id, case id, sequence``; one write per line."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._lock = threading.Lock()

    def add(self, event: Any) -> None:
        line = f"{event.id}\t{event.case_id}\t{event.sequence}\n".encode()
        with self._lock:
            os.write(self._fd, line)

    def close(self) -> None:
        os.close(self._fd)


def next_steps(node: Any, case_ids: list[str]) -> dict[str, list[str]]:
    """What is left to do on each case, from its stored state (one item per case here).

    Read once for the whole job, as a tool lists its work before it starts: reading each case
    on its own would cost the node more than the steps themselves.
    """
    from exchange.lifecycle.model import Stage
    from exchange.store import lifecycle as store

    with node.engine.connect() as conn:
        held = store.states(conn, case_ids)
    out: dict[str, list[str]] = {}
    for case_id in case_ids:
        states = held.get(case_id, [])
        if not states or all(s.closed for s in states):
            out[case_id] = []
        elif states[0].stage is Stage.UNASSESSED:
            out[case_id] = list(STEPS)
        elif states[0].stage is Stage.ASSESSED:
            out[case_id] = list(STEPS[1:])
        elif states[0].host_notice_at is None:
            out[case_id] = list(STEPS[2:])
        else:
            out[case_id] = list(STEPS[3:])
    return out


def step_commands() -> dict[str, Callable[[str], Any]]:
    """The command of each step on a case (``case_work.Command``)."""
    from exchange.domain import AgeGroup, Classification
    from exchange.lifecycle.model import Action, ActionKind, Assessment, Gender
    from exchange.lifecycle.work import Command

    assessment = Assessment(
        Classification.BASELINE, AgeGroup.PREPUBESCENT, Gender.FEMALE, analyst_ref="a-17"
    )
    lea = Action(ActionKind.REPORTED_TO_LEA, partner="bka", reference="BKA-1")
    host = Action(ActionKind.REPORTED_TO_HOST, recipient="abuse@hosting-de.example")
    removed = Action(ActionKind.REMOVED)
    return {
        "assess": lambda c: Command.assess(c, [], assessment),
        "lea": lambda c: Command.act(c, [], lea),
        "host": lambda c: Command.act(c, [], host),
        "removed": lambda c: Command.act(c, [], removed),
    }


class Job:
    """Work every case of the job to its end, in ``threads`` analysts.

    ``bulk`` 1: each step is its own call (``case_work.assess`` / ``act``), as an analyst
    clicks through a case; more: an analyst takes that many cases and makes the next step of
    each in one call (``case_work.run``), as a tool's bulk action does.
    """

    def __init__(self, node: Any, spec: dict[str, Any]) -> None:
        self.node = node
        self.cases: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.todo = next_steps(node, list(spec["cases"]))
        for case_id, steps in self.todo.items():
            if steps:
                self.cases.put(case_id)
        self.threads = int(spec.get("threads", 8))
        self.bulk = int(spec.get("bulk", 1))
        self.pacer = Pacer(spec.get("rate"))
        self.ack = AckFile(Path(spec["ack"]))
        self.commands = step_commands()
        self.failures = 0

    def run(self) -> None:
        workers = [threading.Thread(target=self._analyst, daemon=True) for _ in range(self.threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        self.ack.close()

    def _analyst(self) -> None:
        while chunk := self._take():
            try:
                while chunk := [c for c in chunk if self.todo[c]]:
                    self._next_steps(chunk)
            except Exception as error:  # e.g. the disk refused a write: read the cases again
                self.failures += 1
                if self.failures > 1000:
                    raise  # not a passing fault: the job's figures will show what is missing
                print(f"cases {chunk[:3]}: {error}; retrying", file=sys.stderr, flush=True)
                time.sleep(0.1)
                self.todo.update(next_steps(self.node, chunk))
                for case_id in chunk:
                    self.cases.put(case_id)

    def _take(self) -> list[str]:
        chunk: list[str] = []
        with contextlib.suppress(queue.Empty):
            while len(chunk) < self.bulk:
                chunk.append(self.cases.get_nowait())
        return chunk

    def _next_steps(self, chunk: list[str]) -> None:
        """The next step of each case: one call for all of them (or one call, paced, each)."""
        work = self.node.case_work
        commands = [self.commands[self.todo[c][0]](c) for c in chunk]
        if self.bulk == 1:
            self.pacer.wait()
            one = work.assess if str(commands[0].kind) == "assessment" else work.act
            results = [one(chunk[0], [], commands[0].body)]
        else:
            results = work.run(commands)
        errors = []
        for case_id, result in zip(chunk, results, strict=True):
            if isinstance(result, Exception):
                errors.append(result)
                continue
            self.ack.add(result)
            self.todo[case_id].pop(0)
        if errors:
            raise errors[0]


def run_jobs(node: Any, jobs: Path, stop: threading.Event) -> None:
    """Take ``JOBS/N.json`` in order as they appear; write ``N.done`` after each."""
    n = 0
    while not stop.is_set():
        spec_path = jobs / f"{n}.json"
        done = jobs / f"{n}.done"
        if done.exists():
            n += 1
            continue
        if not spec_path.exists():
            stop.wait(0.05)
            continue
        Job(node, json.loads(spec_path.read_text())).run()
        done.write_text("done\n")
        n += 1


def start_driving(node: Any, jobs: Path, stop: threading.Event) -> threading.Thread:
    thread = threading.Thread(target=run_jobs, args=(node, jobs, stop), daemon=True)
    thread.start()
    return thread


def main() -> int:
    import argparse

    from exchange.node import build_node
    from exchange.settings import load_settings

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--config", required=True)
    p.add_argument("--jobs", required=True, type=Path)
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    node = build_node(load_settings(args.config))
    node.start()
    print(READY, flush=True)
    start_driving(node, args.jobs, stop)
    while not stop.wait(0.5):
        pass
    node.stop(grace=1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
