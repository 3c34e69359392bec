"""Stock per (product, location), the 30-day pace there, and the low-stock crossings it decides: pure.

A movement counts at the location of its order's sales channel or its adjustment's warehouse (STOCK_LOCATIONS);
a missing or unmapped name counts at UNASSIGNED_LOCATION, so that the locations always sum to the product's stock.
Movements are applied one by one in offset order, and after each one a location that went from above its reorder
point to at or below it is marked low and gets a `Stock bas` mail in the outbox; a low location taken back above
gets a `Réassort` and is low no more. Everything here depends only on the value before and the movements (event
time, never the wall clock), so a replay decides exactly what the first pass decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Iterable, Mapping
from zoneinfo import ZoneInfo

from caves_faust.events.records import Movement, ProductStock
from caves_faust.settings import UNASSIGNED_LOCATION, Settings
from caves_faust.stock.reorder import PACE_DAYS, ReorderRules, days_of_cover, sold_over_pace_window

LOW = "low"  # a `Stock bas` mail
RESTOCKED = "restocked"  # a `Réassort` mail


@dataclass(frozen=True)
class Placing:
    """Where movements count and what a location's stock is measured against."""

    location_of: Mapping[str, str]
    zone: ZoneInfo
    rules: ReorderRules
    mail_on: bool  # ALERT_EMAIL_TO set: crossings put mails in the outbox (the low marks are kept either way)

    @classmethod
    def from_settings(cls, settings: Settings) -> "Placing":
        return cls(settings.location_of, ZoneInfo(settings.shop_timezone),
                   ReorderRules(settings.stock_reorder_min_bottles, settings.stock_lead_days,
                                settings.stock_cover_days),
                   settings.mail_on)

    def location(self, place: str | None) -> str:
        return self.location_of.get(place or "", UNASSIGNED_LOCATION)

    def shop_day(self, timestamp: float) -> date:
        return datetime.fromtimestamp(timestamp, tz=self.zone).date()


def stock_by_location(value: ProductStock) -> dict[str, int]:
    """The value's stock per location; a value written before locations has its whole stock unassigned."""
    if value.locations or not value.stock:
        return dict(value.locations)
    return {UNASSIGNED_LOCATION: value.stock}


def at_locations(current: ProductStock, fresh: Iterable[Movement], places: Mapping[int, str],
                 placing: Placing, product_name: str | None, bottle_size_liters: float | None,
                 stock: int, applied: dict[str, int]) -> ProductStock:
    """The value after `fresh` (movements not applied yet, offset order; `places`: offset -> channel or warehouse),
    with the new running `stock` and `applied` marks the caller computed."""
    locations = stock_by_location(current)
    sold = {location: dict(days) for location, days in current.sold.items()}
    low = list(current.low)
    outbox = list(current.outbox)
    mails = current.mails
    name = product_name or current.product_name
    bottle = bottle_size_liters or current.bottle_size_liters
    for movement in fresh:
        location = placing.location(places.get(movement.offset))
        today = placing.shop_day(movement.timestamp)
        daily = sold.setdefault(location, {})
        stock_before = locations.get(location, 0)
        point_before = placing.rules.reorder_point(sold_over_pace_window(daily, today))
        locations[location] = stock_before + movement.quantity_change
        if movement.units_sold:
            key = today.isoformat()
            daily[key] = daily.get(key, 0) + movement.units_sold
        # Days the pace can no longer count, whatever the order of event times: before the newest day's window.
        oldest = (date.fromisoformat(max(daily, default=today.isoformat())) - timedelta(days=PACE_DAYS)).isoformat()
        sold[location] = {day: units for day, units in daily.items() if day > oldest}
        units = sold_over_pace_window(sold[location], today)
        point = placing.rules.reorder_point(units)
        kind = _crossing(location in low, stock_before, point_before, locations[location], point)
        if kind is None:
            continue
        low = [*low, location] if kind == LOW else [other for other in low if other != location]
        if placing.mail_on:
            mails += 1
            outbox.append(_mail(mails, kind, location, locations[location], point, units, placing.rules,
                                name, bottle, movement.timestamp))
    return ProductStock(stock=stock, applied=applied, locations=locations, sold=sold, low=low, outbox=outbox,
                        mails=mails, product_name=name, bottle_size_liters=bottle)


def _crossing(was_low: bool, stock_before: int, point_before: int, stock_after: int, point_after: int) -> str | None:
    """LOW when the location went from above its reorder point to at or below it; RESTOCKED when a low location
    is above it again; None otherwise (in particular while it stays low, or a first delivery to a location)."""
    if not was_low and stock_before > point_before and stock_after <= point_after:
        return LOW
    if was_low and stock_after > point_after:
        return RESTOCKED
    return None


def _mail(number: int, kind: str, location: str, stock: int, point: int, units: int, rules: ReorderRules,
          name: str | None, bottle: float | None, at: float) -> dict[str, Any]:
    """An outbox entry: what the mail says, fixed when it is decided (a later movement changes none of it)."""
    return {
        "number": number, "kind": kind, "location": location, "stock": stock, "reorder_point": point,
        "sold_30_days": units, "cover_days": days_of_cover(stock, units),
        "cases": rules.suggested_cases(stock, units, bottle), "bottle_size_liters": bottle,
        "product_name": name, "at": at,
    }


def without_sent(value: ProductStock, numbers: Iterable[int]) -> ProductStock | None:
    """The value without the outbox entries known sent; None when none of them is in it (already cleared)."""
    sent = set(numbers)
    kept = [mail for mail in value.outbox if mail["number"] not in sent]
    if len(kept) == len(value.outbox):
        return None
    return value.derive(outbox=kept)
