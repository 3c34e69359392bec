"""Reorder points, suggested orders and days of cover: whole bottles and whole cases."""

from __future__ import annotations

from datetime import date

import pytest

from caves_faust.stock.reorder import ReorderRules, case_bottles, days_of_cover, sold_over_pace_window

RULES = ReorderRules(min_bottles=12, lead_days=7, cover_days=21)


@pytest.mark.parametrize("sold, point", [
    (0, 12),  # no sale: the minimum
    (51, 12),  # 51 / 30 x 7 = 11.9: the minimum still
    (52, 13),  # 12.13 rounded up
    (60, 14),  # exactly 14
    (300, 70),
])
def test_the_reorder_point_is_the_larger_of_the_minimum_and_the_lead_time_at_the_pace(sold, point):
    assert RULES.reorder_point(sold) == point


@pytest.mark.parametrize("stock, sold, bottle, cases", [
    (10, 60, 0.75, 6),  # 60 / 30 x 21 = 42 bottles wanted, 32 missing: 5.3 cases -> 6
    (10, 60, 0.375, 3),  # half bottles by 12: 32 / 12 = 2.7 -> 3
    (2, 0, 0.75, 1),  # no sale lately: one case
    (50, 60, 0.75, 1),  # more than the cover already: still one case
    (-4, 30, None, 5),  # oversold: 21 + 4 = 25 -> 4.2 -> 5
])
def test_the_suggested_order_covers_the_cover_days_in_whole_cases_at_least_one(stock, sold, bottle, cases):
    assert RULES.suggested_cases(stock, sold, bottle) == cases


def test_cases_hold_six_bottles_or_twelve_halves():
    assert (case_bottles(0.75), case_bottles(1.5), case_bottles(None), case_bottles(0.375)) == (6, 6, 6, 12)


def test_days_of_cover():
    assert days_of_cover(10, 60) == 5.0
    assert days_of_cover(-3, 60) == 0.0
    assert days_of_cover(10, 0) is None


def test_the_pace_counts_the_last_thirty_shop_days_today_included():
    daily = {"2026-11-07": 100, "2026-11-08": 1, "2026-12-07": 2, "2026-12-08": 1000}
    assert sold_over_pace_window(daily, date(2026, 12, 7)) == 3
