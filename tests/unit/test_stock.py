"""Stock arithmetic: running stock = adjustments - units ordered; windows; replays applied once."""

from __future__ import annotations

import time

import pytest

from caves_faust.models import ProductStock, StockMovement, WindowFigures
from caves_faust.stock import apply_to_stock, apply_to_window, stock_table, stock_tables, window_table


def movement(offset: int, change: int, partition: int = 0, sold: int = 0, revenue: float = 0.0,
             timestamp: float = 1_800_000_000.0) -> StockMovement:
    return StockMovement(
        product_id="1015", source_partition=partition, source_offset=offset, timestamp=timestamp,
        quantity_change=change, units_sold=sold, revenue=revenue, order_count=1 if sold else 0,
    )


def test_stock_adds_adjustments_and_subtracts_orders():
    stock = ProductStock.empty()
    for m in [movement(0, +24), movement(1, -6, sold=6), movement(2, -3)]:
        stock = apply_to_stock(stock, m)
    assert stock.stock == 15


def test_a_replayed_movement_is_applied_once_per_source_partition():
    stock = apply_to_stock(ProductStock.empty(), movement(5, +10, partition=0))
    assert apply_to_stock(stock, movement(5, +10, partition=0)) is None
    assert apply_to_stock(stock, movement(3, +10, partition=0)) is None
    assert apply_to_stock(stock, movement(5, +10, partition=1)).stock == 20


def test_window_figures():
    figures = WindowFigures.empty()
    for m in [movement(0, -6, sold=6, revenue=94.35), movement(1, +12), movement(2, -2, sold=2, revenue=10.1)]:
        figures = apply_to_window(figures, m)
    assert (figures.units_sold, figures.order_count, figures.net_adjustment) == (8, 2, 12)
    assert figures.revenue == pytest.approx(104.45)
    assert apply_to_window(figures, movement(1, +12)) is None


async def test_the_stock_agent_fills_both_tables_and_ignores_the_replay():
    now = time.time()
    async with stock_tables.test_context() as agent:
        for m in [movement(0, +24, timestamp=now), movement(1, -6, sold=6, revenue=90.0, timestamp=now),
                  movement(1, -6, sold=6, revenue=90.0, timestamp=now)]:
            await agent.put(m, key="1015")
        assert stock_table["1015"].stock == 18
        window = window_table["1015"].now()
        assert (window.units_sold, window.revenue, window.net_adjustment, window.order_count) == (6, 90.0, 24, 1)


def test_movements_are_keyed_like_the_tables_so_lookups_route_to_the_owner():
    from caves_faust.stock import stock_movements_topic

    for table in (stock_table, window_table.table):
        assert stock_movements_topic.prepare_key("1015", None) == table.changelog_topic.prepare_key("1015", None)
