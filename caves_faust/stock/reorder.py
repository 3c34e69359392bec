"""Reorder points and suggested orders per (product, location): pure arithmetic on whole bottles.

The pace is the bottles sold at a location over the last `PACE_DAYS` shop days (today included) / `PACE_DAYS`.
Every result is computed in integers (ceilings of exact fractions), so that a replay, a test's recomputation and
the mail agree to the bottle: no float rounding decides whether a stock is "at" its reorder point.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Mapping

PACE_DAYS = 30
CASE_BOTTLES = 6
HALF_BOTTLE_LITERS = 0.375
HALF_BOTTLE_CASE = 12  # half bottles come by the dozen


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def case_bottles(bottle_size_liters: float | None) -> int:
    """Bottles per case: 12 for half bottles (0.375 l), else 6."""
    return HALF_BOTTLE_CASE if bottle_size_liters == HALF_BOTTLE_LITERS else CASE_BOTTLES


def pace_window(today: date) -> tuple[date, date]:
    """The first and last shop day the pace counts, as of `today`."""
    return today - timedelta(days=PACE_DAYS - 1), today


def sold_over_pace_window(daily: Mapping[str, int], today: date) -> int:
    """Bottles sold over the pace window, from units per shop day (ISO dates)."""
    first, last = (d.isoformat() for d in pace_window(today))
    return sum(units for day, units in daily.items() if first <= day <= last)


@dataclass(frozen=True)
class ReorderRules:
    """STOCK_REORDER_MIN_BOTTLES, STOCK_LEAD_DAYS and STOCK_COVER_DAYS, applied to a location's 30-day sales."""

    min_bottles: int
    lead_days: int
    cover_days: int

    def reorder_point(self, sold: int) -> int:
        """The larger of the minimum and the bottles sold over the pace window / 30 x lead days, rounded up."""
        return max(self.min_bottles, _ceil_div(sold * self.lead_days, PACE_DAYS))

    def suggested_cases(self, stock: int, sold: int, bottle_size_liters: float | None) -> int:
        """Cases to order: what brings the stock to `cover_days` of sales at the pace (rounded up to whole cases),
        at least one case (a product that did not sell lately still gets one case)."""
        wanted = _ceil_div(sold * self.cover_days, PACE_DAYS) - stock
        return max(1, _ceil_div(wanted, case_bottles(bottle_size_liters)))


def days_of_cover(stock: int, sold: int) -> float | None:
    """Days the stock lasts at the pace; None without any sale over the pace window (it lasts indefinitely)."""
    if sold <= 0:
        return None
    return max(stock, 0) * PACE_DAYS / sold
