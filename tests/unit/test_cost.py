"""The warehouse's up-time estimate: writes, and the gaps between them up to the auto-suspend."""

from __future__ import annotations

from caves_faust.observability import metrics
from caves_faust.snowflake.cost import WarehouseClock


def test_gaps_shorter_than_the_auto_suspend_keep_the_warehouse_up_and_longer_ones_let_it_suspend():
    before = metrics.warehouse_seconds._value.get()
    clock = WarehouseClock(auto_suspend_seconds=60, credits_per_hour=2)

    added = [clock.wrote(0, 0.5), clock.wrote(1.5, 2.0), clock.wrote(500, 501)]

    assert added == [0.5, 1.0 + 0.5, 60 + 1.0]  # the first write; a 1 s gap; a gap past the auto-suspend
    assert metrics.warehouse_seconds._value.get() - before == sum(added)
    assert metrics.warehouse_credits_per_hour._value.get() == 2
