"""Stock arithmetic: running stock = adjustments - units ordered; windows; replays applied once."""

from __future__ import annotations

import json
import time

import pytest

from caves_faust.events.records import Movement, ProductStock, StockMovements, WindowFigures
from caves_faust.events.validation import validate
from caves_faust.stock.tables import (
    PRODUCT_NAME_CHARS,
    apply_to_stock,
    apply_to_window,
    by_window,
    mails_sent_topic,
    movements_of,
    stock_movements_topic,
    stock_table,
    stock_tables,
    window_table,
)
from tests.corpus import fake_event, order


def movement(offset: int, change: int, sold: int = 0, revenue: float = 0.0,
             timestamp: float = 1_800_000_000.0) -> Movement:
    return Movement(offset, timestamp, change, sold, revenue, 1 if sold else 0)


def batch(source_partition: int, movements: list[Movement], places: list[str] | None = None,
          topic_id: str | None = None) -> StockMovements:
    return StockMovements(product_id="1015", source_partition=source_partition, movements=movements,
                          places=places if places is not None else [""] * len(movements), source_topic_id=topic_id)


def test_stock_adds_adjustments_and_subtracts_orders():
    stock = apply_to_stock(ProductStock.empty(),
                           batch(0, [movement(0, +24), movement(1, -6, sold=6), movement(2, -3)]))
    assert stock.stock == 15 and stock.applied == {"0": 2}


def test_a_replayed_movement_is_applied_once_per_source_partition():
    stock = apply_to_stock(ProductStock.empty(), batch(0, [movement(5, +10)]))
    assert apply_to_stock(stock, batch(0, [movement(5, +10)])) is None
    assert apply_to_stock(stock, batch(0, [movement(3, +10)])) is None
    assert apply_to_stock(stock, batch(1, [movement(5, +10)])).stock == 20
    # A replay whose batch straddles what was applied: only the new part counts.
    assert apply_to_stock(stock, batch(0, [movement(4, +10), movement(5, +10), movement(6, +1)])).stock == 11
    # The same message twice within one batch (Faust redelivers the committed offset after a rebalance).
    twice = [movement(6, +1), movement(7, +2), movement(6, +1), movement(7, +2)]
    assert apply_to_stock(stock, batch(0, twice)).stock == 13
    assert apply_to_stock(stock, batch(0, [movement(6, +1), movement(7, +2), movement(6, +1)])).applied == {"0": 7}


def test_a_recreated_topic_starts_its_partitions_from_no_mark():
    old = apply_to_stock(ProductStock.empty(), batch(0, [movement(5, +10)], topic_id="A"))
    assert old.applied == {"A:0": 5}
    # The new topic's offsets restart at 0: none of them is a replay of the old one's.
    new = apply_to_stock(old, batch(0, [movement(0, -1), movement(1, -2)], topic_id="B"))
    assert (new.stock, new.applied) == (7, {"B:0": 1})
    assert apply_to_stock(new, batch(0, [movement(1, -2)], topic_id="B")) is None
    assert apply_to_stock(new, batch(1, [movement(0, +3)], topic_id="B")).applied == {"B:0": 1, "B:1": 0}


def test_a_mark_of_no_known_life_is_taken_for_the_current_one():
    legacy = apply_to_stock(ProductStock.empty(), batch(0, [movement(5, +10)]))
    assert legacy.applied == {"0": 5}
    assert apply_to_stock(legacy, batch(0, [movement(5, +10)], topic_id="A")) is None
    assert apply_to_stock(legacy, batch(0, [movement(6, +1)], topic_id="A")).applied == {"A:0": 6}


def test_window_figures():
    figures = apply_to_window(WindowFigures.empty(), "0", [movement(0, -6, sold=6, revenue=94.35), movement(1, +12),
                                                         movement(2, -2, sold=2, revenue=10.1)])
    assert (figures.units_sold, figures.order_count, figures.net_adjustment) == (8, 2, 12)
    assert figures.revenue == pytest.approx(104.45)
    assert apply_to_window(figures, "0", [movement(1, +12)]) is None


def test_movements_are_grouped_by_their_tumbling_window():
    size = window_table.table.window.size
    start = (1_800_000_000 // size) * size
    windows = by_window([movement(0, 1, timestamp=start + 1), movement(1, 1, timestamp=start + size + 1),
                         movement(2, 1, timestamp=start + 2)])
    assert {w: [m.offset for m in ms] for w, ms in windows.items()} == {start: [0, 2], start + size: [1]}


async def test_the_stock_agent_fills_both_tables_and_ignores_the_replay():
    now = time.time()
    batch = [movement(0, +24, timestamp=now), movement(1, -6, sold=6, revenue=90.0, timestamp=now)]
    async with stock_tables.test_context() as agent:
        await agent.put(StockMovements(product_id="1015", source_partition=0, movements=batch), key="1015")
        await agent.put(StockMovements(product_id="1015", source_partition=0, movements=batch[1:]), key="1015")
        assert stock_table["1015"].stock == 18
        window = window_table["1015"].now()
        assert (window.units_sold, window.revenue, window.net_adjustment, window.order_count) == (6, 90.0, 24, 1)


def test_movements_are_keyed_like_the_tables_so_lookups_route_to_the_owner():
    for table in (stock_table, window_table.table):
        assert stock_movements_topic.prepare_key("1015", None) == table.changelog_topic.prepare_key("1015", None)
    # The mails-sent marks too: the agent clearing an outbox writes the value on its own partition.
    assert mails_sent_topic.prepare_key("1015", None) == stock_table.changelog_topic.prepare_key("1015", None)
    assert mails_sent_topic.partitions == stock_movements_topic.partitions == stock_table.partitions


def test_a_huge_product_name_is_not_carried_whole_into_the_stock():
    # An event may be as large as the broker allows; the stock's own messages and values must stay far below that.
    payload = json.dumps(order(1, 1001, product_name="é" * 500_000)).encode()
    [movements] = movements_of([(validate(payload), fake_event(0, 1, payload))])
    assert movements.product_name == "é" * PRODUCT_NAME_CHARS
