"""`history generate`'s sales: a shop's past days from the live generator's catalogue, written to a SQLite file.

Each day's sales come from a random generator seeded with the seed and the date alone, so a day is the same in
every file made with the same seed, whatever `--days` and `--end`: overlapping files agree, line for line. Order
line ids are HISTORY_IDS_FROM + the day's ordinal * LINES_PER_DAY_MAX + the line's rank in its day: far above
the live generator's (it numbers on from below FIRST_ORDER_LINE_IDS' end), and the same line keeps its id.
"""

from __future__ import annotations

import math
import os
import random
import sqlite3
from dataclasses import astuple, dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Callable, Iterator, TypeVar
from zoneinfo import ZoneInfo

from caves_faust.generator.events import (
    CUSTOMER_IDS,
    DISCOUNT_RATES,
    FIRST_ORDER_LINE_IDS,
    ORDER_QUANTITY_WEIGHTS,
    Product,
    catalog,
)
from caves_faust.history import calendar

T = TypeVar("T")

HISTORY_IDS_FROM = 1_000_000_000_000
LINES_PER_DAY_MAX = 100_000
DEFAULT_SEED = 0
WRITE_CHUNK = 10_000  # rows per executemany: memory stays bounded
TABLE = "sales"
# The contract's table (docs: "History input"); order_line_id is the primary key, hence unique in a file.
CREATE_TABLE = f"""CREATE TABLE {TABLE} (
    order_line_id INTEGER PRIMARY KEY, ordered_at TEXT NOT NULL, customer_id INTEGER NOT NULL,
    product_id INTEGER NOT NULL, product_name TEXT, category TEXT, quantity INTEGER NOT NULL, unit_price REAL,
    discount REAL, total_price REAL, bottle_size_liters REAL, sales_channel TEXT)"""
INSERT = f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

assert HISTORY_IDS_FROM > FIRST_ORDER_LINE_IDS[1] * 1000, "history ids must stay clear of the live generator's"


@dataclass(frozen=True)
class Sale:
    """One row of the `sales` table, in its column order."""

    order_line_id: int
    ordered_at: str  # ISO 8601 with the shop's UTC offset on that day
    customer_id: int
    product_id: int
    product_name: str
    category: str
    quantity: int
    unit_price: float
    discount: float
    total_price: float
    bottle_size_liters: float
    sales_channel: str


def days_ending_before(end: date, days: int) -> list[date]:
    """The `days` days before `end` (excluded), oldest first."""
    return [end - timedelta(days=offset) for offset in range(days, 0, -1)]


def sales_on(day: date, seed: int, zone: ZoneInfo) -> list[Sale]:
    """The order lines of one day, in time order."""
    rng = random.Random(f"{seed}:{day.isoformat()}")
    expected = calendar.lines_on(day)
    count = min(max(0, round(rng.gauss(expected, math.sqrt(expected)))), LINES_PER_DAY_MAX)
    channels = calendar.open_channels(day)
    products = list(catalog().values())
    product_weights = [calendar.category_factor(p.category, day) for p in products]
    discount_chance = calendar.discount_chance(day)
    drawn = []
    for _ in range(count):
        channel = _weighted(rng, channels)
        moment = datetime.combine(day, _time_of_order(rng, channel), zone)
        product = rng.choices(products, product_weights)[0]
        drawn.append((moment, channel, product))
    drawn.sort(key=lambda line: line[0])
    first_id = HISTORY_IDS_FROM + day.toordinal() * LINES_PER_DAY_MAX
    return [_sale(rng, first_id + rank, moment, channel, product, discount_chance)
            for rank, (moment, channel, product) in enumerate(drawn)]


def _sale(rng: random.Random, order_line_id: int, moment: datetime, channel: str, product: Product,
          discount_chance: float) -> Sale:
    quantity = _weighted(rng, ORDER_QUANTITY_WEIGHTS)
    discount = rng.choice(DISCOUNT_RATES) if rng.random() < discount_chance else 0.0
    return Sale(
        order_line_id, moment.isoformat(timespec="seconds"), rng.choice(CUSTOMER_IDS), product.product_id,
        product.name, product.category, quantity, product.unit_price, discount,
        round(quantity * product.unit_price * (1 - discount), 2), product.bottle_size_liters, channel,
    )


def _time_of_order(rng: random.Random, channel: str) -> time:
    if channel == calendar.ECOM:
        hour = rng.choices(range(24), calendar.ECOM_HOUR_WEIGHTS)[0]
        return time(hour, rng.randrange(60), rng.randrange(60))
    opens, closes = (t.hour * 3600 + t.minute * 60 for t in calendar.BOUTIQUE_HOURS)
    second = rng.randrange(opens, closes)
    return time(second // 3600, second // 60 % 60, second % 60)


def _weighted(rng: random.Random, weights: dict[T, int]) -> T:
    return rng.choices(tuple(weights), weights=tuple(weights.values()))[0]


def sales(days: list[date], seed: int, zone: ZoneInfo) -> Iterator[Sale]:
    for day in days:
        yield from sales_on(day, seed, zone)


def write(path: Path, rows: Iterator[Sale], progress: Callable[[int], None] = lambda n: None) -> int:
    """Write the rows to a new SQLite file at `path` (replacing one there only once complete); returns the count."""
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    written = 0
    with sqlite3.connect(partial) as db:
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.execute(CREATE_TABLE)
        chunk: list[tuple] = []
        for row in rows:
            chunk.append(astuple(row))
            if len(chunk) >= WRITE_CHUNK:
                written += _insert(db, chunk, progress)
        written += _insert(db, chunk, progress)
    db.close()
    os.replace(partial, path)
    return written


def _insert(db: sqlite3.Connection, chunk: list[tuple], progress: Callable[[int], None]) -> int:
    db.executemany(INSERT, chunk)
    count = len(chunk)
    chunk.clear()
    progress(count)
    return count
