"""The folder killed with SIGKILL mid-way: what it committed counts once, the rest once later.

A child process folds a page at a time (each page one transaction with its watermarks) and is
killed after a few pages, perhaps inside a transaction; the node's folder then finishes the
job. The rollup must equal a direct recount: nothing lost, nothing counted twice.
"""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy import Engine

from exchange.domain import LogKind
from exchange.stats.figures import NodeFigures
from exchange.store import stats as store
from exchange.store.writer import Writer
from tests.exchange.factories import T0, FakeClock
from tests.exchange.stats.held import ME, Held, recompute

CHILD = """
import sys, time
from exchange.stats.fold import Folder
from exchange.store.engine import open_engine

engine = open_engine(sys.argv[1])
folder = Folder(member=sys.argv[2], page=7)
after = None
while True:
    with engine.begin() as conn:
        page = folder.fold_page(conn, after)
        time.sleep(0.02)  # inside the transaction: a kill may land before its COMMIT
    print("page", flush=True)
    after = page.after
    if not page.more:
        print("done", flush=True)
        break
"""


def test_a_folder_killed_mid_way_counts_everything_exactly_once(
    db_url: str, engine: Engine, writer: Writer
) -> None:
    clock = FakeClock(T0)
    held = Held(engine, writer)
    for i in range(60):
        held.open(now=clock(), items=1 + i % 3, country=["US", "JP", "NL"][i % 3])
        held.log(LogKind.INTAKE, now=clock(), country="US")
        clock.advance(60)

    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, db_url, ME], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    for _ in range(3):
        assert child.stdout.readline().strip() == "page"
    child.kill()
    child.wait(timeout=10)
    with engine.connect() as conn:
        partial = store.all_counts(conn)

    NodeFigures(engine=engine, member=ME, clock=clock, writer=writer).fold()

    with engine.connect() as conn:
        final = store.all_counts(conn)
    assert partial  # the child's committed pages were there …
    assert partial != final  # … and it was killed before the end
    assert final == recompute(engine)
