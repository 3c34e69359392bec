"""The shop's year: how many order lines a day brings, which channels are open, when orders come, what sells.

Pure and seed-free: every figure depends on the date alone. Boutiques close on Sundays (E-com sells every day),
Saturday is the busiest day, December the busiest month (Christmas, New Year's Eve), and rosé sells in summer.
"""

from __future__ import annotations

from datetime import date, time

from caves_faust.generator.events import SALES_CHANNEL_WEIGHTS

ECOM = "E-com"
SUNDAY = 6  # date.weekday()
# Order lines on an ordinary weekday of an ordinary month, all channels: about 100,000 a year.
BASE_LINES_PER_DAY = 280
# Monday .. Sunday: Saturday peak; on Sunday only E-com sells (its weekday share of the lines).
WEEKDAY_FACTORS = (0.75, 0.85, 0.9, 1.0, 1.25, 1.7, 1.0)
# January .. December: a quiet January, a summer dip in August (boutiques on holiday), the December peak.
MONTH_FACTORS = (0.75, 0.8, 0.9, 0.95, 1.0, 1.05, 1.0, 0.8, 0.95, 1.0, 1.2, 2.1)
# The last days before Christmas and New Year's Eve come on top of December's factor.
FESTIVE_DAYS = {(12, day): 1.6 for day in range(18, 25)} | {(12, 30): 1.5, (12, 31): 1.8}
# How much more of a category sells in a month than on average (others: 1).
SEASONAL_CATEGORIES = {
    "Rosé": {5: 2.0, 6: 3.0, 7: 3.5, 8: 3.0, 9: 1.5, 11: 0.5, 12: 0.4, 1: 0.4, 2: 0.5},
    "Effervescent": {12: 3.0, 11: 1.3},
    "Spiritueux": {12: 1.8, 11: 1.2},
}
# Boutiques open 10:00-19:30 (shop time); E-com orders come day and night, mostly in the evening.
BOUTIQUE_HOURS = (time(10, 0), time(19, 30))
ECOM_HOUR_WEIGHTS = (1, 1, 1, 1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 8, 7, 7, 7, 8, 9, 11, 12, 11, 7, 3)
# Occasional discounts: most lines at list price; more of them in the January and summer sales.
DISCOUNT_CHANCE = 0.12
SALES_PERIOD_DISCOUNT_CHANCE = 0.35
SALES_PERIODS = ((1, 8, 1, 31), (6, 25, 7, 22))  # (month, day) .. (month, day), both ends included


def lines_on(day: date) -> float:
    """The expected number of order lines on `day`, all channels."""
    factor = WEEKDAY_FACTORS[day.weekday()] * MONTH_FACTORS[day.month - 1] * FESTIVE_DAYS.get((day.month, day.day), 1.0)
    if day.weekday() == SUNDAY:
        factor *= SALES_CHANNEL_WEIGHTS[ECOM] / sum(SALES_CHANNEL_WEIGHTS.values())
    return BASE_LINES_PER_DAY * factor


def open_channels(day: date) -> dict[str, int]:
    """The sales channels selling on `day`, with their weights."""
    if day.weekday() == SUNDAY:
        return {ECOM: SALES_CHANNEL_WEIGHTS[ECOM]}
    return dict(SALES_CHANNEL_WEIGHTS)


def category_factor(category: str, day: date) -> float:
    return SEASONAL_CATEGORIES.get(category, {}).get(day.month, 1.0)


def discount_chance(day: date) -> float:
    in_sales = any((m1, d1) <= (day.month, day.day) <= (m2, d2) for m1, d1, m2, d2 in SALES_PERIODS)
    return SALES_PERIOD_DISCOUNT_CHANCE if in_sales else DISCOUNT_CHANCE
