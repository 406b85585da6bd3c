"""bot/heap.py: what start-up built is out of the cyclic collector's scans afterwards."""

from __future__ import annotations

import gc

from bot import heap


def test_settle_moves_what_exists_out_of_the_scanned_generations() -> None:
    built_at_start = {"tables": [list(range(3)) for _ in range(10)]}
    try:
        frozen = heap.settle()
        assert frozen >= 1 and gc.get_freeze_count() == frozen
        tracked = gc.get_objects()
        assert not any(o is built_at_start for o in tracked)
        made_later: dict[str, list[int]] = {"after": []}
        assert any(o is made_later for o in gc.get_objects())  # new objects are collected as before
    finally:
        gc.unfreeze()
    assert any(o is built_at_start for o in gc.get_objects())
