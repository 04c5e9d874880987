"""The ``node_meta`` key/value table: the health probe's write, and nothing else of the node's.

Why here: the health monitor (ops/health.py) proves the database takes writes by running one
through the single writer; that statement is SQL, so it lives in the store. Two forms:

* ``touch_probe`` — ``UPDATE … WHERE`` no row: it needs the write lock (so a locked, read-only or
  unreachable database fails it) and changes nothing — the steady-state probe;
* ``stamp_probe`` — really writes the ``health-probe`` row (update, or insert the first time), the
  probe that proves a database that refused a write (a full disk) takes one again.
"""

from __future__ import annotations

from sqlalchemy import Connection, insert, update

from exchange.store import schema

META = schema.node_meta
PROBE_KEY = "health-probe"


def touch_probe(conn: Connection) -> None:
    """Take the write lock, change nothing."""
    conn.execute(
        update(META)
        .where(META.c.key == PROBE_KEY, META.c.key != PROBE_KEY)
        .values(value=META.c.value)
    )


def stamp_probe(conn: Connection, stamp: str) -> None:
    """Set the ``health-probe`` row to ``stamp``, creating it the first time."""
    done = conn.execute(update(META).where(META.c.key == PROBE_KEY).values(value=stamp))
    if done.rowcount == 0:
        conn.execute(insert(META).values(key=PROBE_KEY, value=stamp))
