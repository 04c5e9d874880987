"""``ihx node run`` sets the startup heap aside and makes the cyclic GC's collections rarer.

Called in this process (and undone after): the node's own call, at the end of its start-up.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from exchange.cli.node import GC_THRESHOLDS, _freeze_startup_heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    """The thresholds as they were, and nothing frozen (nothing else freezes under pytest)."""
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restored_gc")
def test_the_started_node_freezes_its_heap_and_collects_less_often() -> None:
    # Reports in flight live about a second: the defaults walked them again at every older
    # collection (exchange/cli/node.py says what that cost).
    assert GC_THRESHOLDS[0] > gc.get_threshold()[0]
    frozen = gc.get_freeze_count()
    _freeze_startup_heap()
    assert gc.get_freeze_count() > frozen
    assert gc.get_threshold() == GC_THRESHOLDS
