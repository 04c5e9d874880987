"""A node on SQLite checkpoints its log on its own thread, and its writer only as a backstop.

A real node (tests/exchange/ops/live_node.py) on its default SQLite file: the checkpointer's
rounds are counted as they run, and the writer's connection is asked for its own threshold.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from exchange.store.wal import BACKSTOP_PAGES
from exchange.store.writer import Tx
from tests.conftest import GeoRow
from tests.exchange.ops.live_node import exercise, live_node
from tests.integration.support import wait_until


def test_a_sqlite_node_checkpoints_its_log_off_the_writer(
    tmp_path: Path, geo_table: Mapping[str, GeoRow]
) -> None:
    with live_node(tmp_path / "fed", geo_table) as (fed, node):
        checkpoints = node.wal_checkpoints
        assert checkpoints is not None
        exercise(fed, node)
        wait_until(lambda: checkpoints.runs >= 2 and checkpoints.last is not None, 30)

        def threshold(tx: Tx) -> int:
            return int(tx.conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())

        assert node.writer.execute(threshold) == BACKSTOP_PAGES
    assert checkpoints.failures == 0
