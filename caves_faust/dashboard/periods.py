"""Sales over a period of days ending today (the shop's today), and the same figures for the period before it and for
the same days a year earlier."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd


@dataclass(frozen=True)
class Period:
    label: str
    days: int  # ending today, today included


PERIODS = (Period("aujourd'hui", 1), Period("7 jours", 7), Period("30 jours", 30))


@dataclass(frozen=True)
class Totals:
    revenue: float
    orders: int
    units: int

    @property
    def basket(self) -> float:
        """Average revenue per order; 0 without orders."""
        return self.revenue / self.orders if self.orders else 0.0


def totals(daily: pd.DataFrame, last_day: date, days: int) -> Totals:
    """Totals of DAILY_SALES rows (SALES_DATE, ORDERS, UNITS, REVENUE) over `days` days ending on `last_day`."""
    dates = pd.to_datetime(daily["SALES_DATE"]).dt.date
    rows = daily[(dates > last_day - timedelta(days=days)) & (dates <= last_day)]
    return Totals(float(rows["REVENUE"].astype(float).sum()), int(rows["ORDERS"].sum()), int(rows["UNITS"].sum()))


def a_year_before(day: date) -> date:
    """The same date a year earlier (28 February for a 29th)."""
    try:
        return day.replace(year=day.year - 1)
    except ValueError:
        return day.replace(year=day.year - 1, day=28)


def a_year_earlier(daily: pd.DataFrame, today: date, period: Period) -> Totals:
    """The period's totals a year earlier: the same days of the calendar, a year before."""
    return totals(daily, a_year_before(today), period.days)


def this_and_before(daily: pd.DataFrame, today: date, period: Period) -> tuple[Totals, Totals]:
    return totals(daily, today, period.days), totals(daily, today - timedelta(days=period.days), period.days)
