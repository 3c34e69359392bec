"""The dashboard's own rules, without a warehouse: French figures, the periods compared, read-only reads, what a
worker's metrics say of its warehouse builds."""

from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from prometheus_client import REGISTRY, generate_latest

from caves_faust.dashboard import french
from caves_faust.dashboard.live import Builds, builds_in
from caves_faust.dashboard.periods import PERIODS, Totals, this_and_before
from caves_faust.dashboard.prod import read
from caves_faust.observability import metrics

PARIS = ZoneInfo("Europe/Paris")


def test_amounts_and_counts_are_written_the_french_way():
    assert french.euros(1234567.5) == "1\u202f234\u202f567,50\u00a0€"
    assert french.euros(0) == "0,00\u00a0€"
    assert french.number(1093) == "1\u202f093"
    assert french.number(2.25, 1) == "2,2"  # the float 2.25 rounds half to even, as Python's format does


def test_a_change_is_signed_and_absent_when_there_is_nothing_to_compare_with():
    assert french.change(110, 100) == "+10,0\u00a0%"
    assert french.change(90, 100) == "-10,0\u00a0%"
    assert french.change(5, 0) is None


def test_moments_are_shown_on_the_shops_clock_in_summer_and_winter():
    assert french.moment(datetime(2026, 7, 14, 10, 0, tzinfo=timezone.utc), PARIS) == "14/07/2026 12:00"
    assert french.moment(datetime(2026, 12, 1, 23, 30), PARIS) == "02/12/2026 00:30"  # naive: UTC
    assert french.day(date(2026, 12, 1)) == "01/12/2026"


def test_each_period_ends_today_and_is_compared_with_the_one_just_before():
    daily = pd.DataFrame({
        "SALES_DATE": [date(2026, 12, d) for d in (1, 1, 2, 8, 9, 15)],
        "ORDERS": [1, 2, 3, 4, 5, 6],
        "UNITS": [10, 20, 30, 40, 50, 60],
        "REVENUE": [100.0, 200.0, 300.0, 400.0, 500.0, 600.0],
    })
    today = date(2026, 12, 15)
    by_label = {p.label: this_and_before(daily, today, p) for p in PERIODS}

    assert by_label["aujourd'hui"] == (Totals(600.0, 6, 60), Totals(0.0, 0, 0))
    assert by_label["7 jours"] == (Totals(1100.0, 11, 110), Totals(700.0, 7, 70))  # 9..15, then 2..8
    assert by_label["30 jours"] == (Totals(2100.0, 21, 210), Totals(0.0, 0, 0))
    assert Totals(900.0, 9, 90).basket == 100.0 and Totals(0.0, 0, 0).basket == 0.0


@pytest.mark.parametrize("statement", ["DELETE FROM PROD.DAILY_SALES", "UPDATE X SET A = 1", "CREATE TABLE X (A INT)",
                                       "  insert into X values (1)"])
def test_the_dashboard_runs_nothing_but_a_select(statement):
    with pytest.raises(ValueError, match="only reads"):
        read(statement)


def test_the_last_warehouse_build_is_read_from_the_workers_metrics():
    before = builds_in(generate_latest(REGISTRY).decode())
    metrics.elt_last_success.set(1796117671.5)
    metrics.elt_interval.set(300)
    try:
        assert builds_in(generate_latest(REGISTRY).decode()) == Builds(1796117671.5, 300.0)
    finally:
        metrics.elt_last_success.set(before.last_success or 0)
        metrics.elt_interval.set(before.interval_seconds)
    assert builds_in("") == Builds(None, 0.0)  # a worker from before the builds


def test_the_stock_per_location_is_live_with_the_warehouses_reorder_points_else_the_warehouses():
    import pandas as pd

    from caves_faust.dashboard.locations import grid, per_location

    warehouse = pd.DataFrame({"PRODUCT_ID": [1, 1, 2], "LOCATION": ["Lyon", "Paris", "Paris"], "STOCK": [5, 50, 3],
                              "REORDER_POINT": [14, 12, 12]})
    live = {1: {"Lyon": 4, "Paris": 50, "non affecté": -2}, 2: {"Paris": 3}}
    rows = per_location(live, warehouse, minimum=12)
    assert rows.values.tolist() == [[1, "Lyon", 4, 14], [1, "Paris", 50, 12], [1, "non affecté", -2, 12],
                                    [2, "Paris", 3, 12]]
    assert per_location(None, warehouse, 12)["STOCK"].tolist() == [5, 50, 3]  # the worker away: the warehouse's
    assert per_location(None, None, 12).empty
    assert grid(rows).loc[2].to_dict() == {"Lyon": 0, "Paris": 3, "non affecté": 0}
