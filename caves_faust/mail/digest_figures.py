"""The closing-time digest's figures, read from Snowflake and the audit: one shop day against the same weekday a
week before, the best sellers, the (product, location)s at or below their reorder point, the day's dead letters,
and up to when the figures are complete.

Straight from `RAW_EVENTS_STREAM`, `DLQ_EVENTS` and `BATCH_DATA.SALES` (not the dbt models, which may be an
`ELT_INTERVAL_SECONDS` behind): the rules are the contract's and the warehouse layers'. An order's shop day is that
of its `event_timestamp` in SHOP_TIMEZONE, else of its Kafka timestamp; what it earned is its `total_price`, else
quantity x unit price less the discount; an order line loaded from history and streamed counts once (the streamed
copy). Stock per location and the 30-day pace follow the worker's rules (stock/locations.py, stock/reorder.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as clock
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from aiokafka import TopicPartition
from snowflake.connector.errors import ProgrammingError

from caves_faust.audit import AuditWarehouse, audit_partitions
from caves_faust.kafka.topic_ids import current_topic_id
from caves_faust.kafka.topic_log import group_less_consumer, log_bounds, records
from caves_faust.settings import Settings
from caves_faust.stock.locations import Placing
from caves_faust.stock.reorder import case_bottles, pace_window

BEST_SELLERS = 5
# Orders are read by Kafka timestamp around the two days, then dated by their event_timestamp: an order whose
# event_timestamp lies further than this from its Kafka timestamp is not counted (docs/operations.md).
DATING_MARGIN = timedelta(days=1)

ORDERS = """SELECT EVENT_CONTENT, EVENT_METADATA:timestamp::FLOAT FROM RAW_EVENTS_STREAM
    WHERE EVENT_TYPE = 'ORDER_CREATED' AND EVENT_METADATA:timestamp::FLOAT >= ?
      AND EVENT_METADATA:timestamp::FLOAT < ?"""
HISTORY = """SELECT ORDER_LINE_ID, ORDERED_AT, PRODUCT_ID, PRODUCT_NAME, QUANTITY, UNIT_PRICE, DISCOUNT, TOTAL_PRICE
    FROM BATCH_DATA.SALES WHERE SUBSTR(ORDERED_AT, 1, 10) IN (?, ?, ?, ?, ?, ?)"""
STOCK_PLACES = """SELECT PRODUCT_ID,
       IFF(EVENT_TYPE = 'ORDER_CREATED', EVENT_CONTENT:sales_channel::VARCHAR, EVENT_CONTENT:warehouse::VARCHAR),
       SUM(IFF(EVENT_TYPE = 'ORDER_CREATED', -EVENT_CONTENT:quantity::INTEGER, EVENT_CONTENT:quantity_change::INTEGER)),
       SUM(IFF(EVENT_TYPE = 'ORDER_CREATED' AND EVENT_METADATA:timestamp::FLOAT >= ?
               AND EVENT_METADATA:timestamp::FLOAT < ?, EVENT_CONTENT:quantity::INTEGER, 0)),
       MAX(EVENT_CONTENT:product_name::VARCHAR), MAX(EVENT_CONTENT:bottle_size_liters::FLOAT)
    FROM RAW_EVENTS_STREAM GROUP BY 1, 2"""
LETTERS = """SELECT ERROR_TYPE, COUNT(*) FROM DLQ_EVENTS
    WHERE DATE_PART(EPOCH_SECOND, SOURCE_TIMESTAMP) >= ? AND DATE_PART(EPOCH_SECOND, SOURCE_TIMESTAMP) < ?
    GROUP BY 1"""


@dataclass(frozen=True)
class DayFigures:
    revenue: float = 0.0
    orders: int = 0
    bottles: int = 0

    @property
    def basket(self) -> float | None:
        return self.revenue / self.orders if self.orders else None


@dataclass(frozen=True)
class Seller:
    product_id: int
    name: str | None
    bottles: int
    revenue: float


@dataclass(frozen=True)
class LowStock:
    product_id: int
    name: str | None
    location: str
    stock: int
    reorder_point: int
    cases: int
    case_bottles: int


@dataclass(frozen=True)
class Digest:
    day: date
    today: DayFigures
    last_week: DayFigures
    best_sellers: list[Seller]
    low_stock: list[LowStock]
    letters: dict[str, int]
    complete_until: datetime | None  # None: `incomplete` says why
    incomplete: str = ""
    made_at: datetime = field(default_factory=lambda: datetime.now().astimezone())


@dataclass(frozen=True)
class OrderLine:
    line_id: str
    day: date
    product_id: int
    name: str | None
    quantity: int
    revenue: float


def earned(quantity: int, unit_price: float | None, discount: float | None, total_price: float | None) -> float:
    if total_price is not None:
        return float(total_price)
    if unit_price is None:
        return 0.0
    return round(round(quantity * unit_price, 2) * (1 - (discount or 0)), 2)


def _shop_day(text: str | None, fallback: float, zone: ZoneInfo) -> date:
    if text:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=ZoneInfo("UTC"))
            return moment.astimezone(zone).date()
    return datetime.fromtimestamp(fallback, tz=zone).date()


def streamed_line(content: dict[str, Any], kafka_timestamp: float, zone: ZoneInfo) -> OrderLine:
    quantity = int(content["quantity"])
    return OrderLine(str(content["order_line_id"]), _shop_day(content.get("event_timestamp"), kafka_timestamp, zone),
                     int(content["product_id"]), content.get("product_name"), quantity,
                     earned(quantity, content.get("unit_price"), content.get("discount"), content.get("total_price")))


def day_figures(lines: Iterable[OrderLine]) -> DayFigures:
    lines = list(lines)
    return DayFigures(round(sum(line.revenue for line in lines), 2), len(lines), sum(line.quantity for line in lines))


def best_sellers(lines: Iterable[OrderLine]) -> list[Seller]:
    bottles: Counter[int] = Counter()
    revenue: dict[int, float] = defaultdict(float)
    names: dict[int, str | None] = {}
    for line in lines:
        bottles[line.product_id] += line.quantity
        revenue[line.product_id] += line.revenue
        names[line.product_id] = line.name or names.get(line.product_id)
    ranked = sorted(bottles, key=lambda p: (-bottles[p], -revenue[p], p))[:BEST_SELLERS]
    return [Seller(p, names[p], bottles[p], round(revenue[p], 2)) for p in ranked]


def low_stock(rows: Iterable[tuple], settings: Settings) -> list[LowStock]:
    """(product, channel or warehouse, change, sold over the pace window, name, bottle size) rows, per location."""
    placing = Placing.from_settings(settings)  # the worker's own rules: where a movement counts, reorder points
    rules = placing.rules
    stock: Counter[tuple[int, str]] = Counter()
    sold: Counter[tuple[int, str]] = Counter()
    names: dict[int, str | None] = {}
    bottles: dict[int, float | None] = {}
    for product, place, change, units, name, bottle in rows:
        key = (int(product), placing.location(place))
        stock[key] += int(change or 0)
        sold[key] += int(units or 0)
        names[key[0]] = name or names.get(key[0])
        bottles[key[0]] = bottle or bottles.get(key[0])
    low = []
    for (product, location) in sorted(stock):
        point = rules.reorder_point(sold[(product, location)])
        units = stock[(product, location)]
        if units <= point:
            low.append(LowStock(product, names[product], location, units, point,
                                rules.suggested_cases(units, sold[(product, location)], bottles[product]),
                                case_bottles(bottles[product])))
    return low


def _day_bounds(day: date, zone: ZoneInfo) -> tuple[float, float]:
    start = datetime.combine(day, clock(), tzinfo=zone)
    return start.timestamp(), datetime.combine(day + timedelta(days=1), clock(), tzinfo=zone).timestamp()


def _missing(exc: ProgrammingError, table: str) -> bool:
    """Whether Snowflake refused the statement because `table` does not exist (yet)."""
    text = str(exc).upper()
    return table in text and ("DOES NOT EXIST" in text or "NOT AUTHORIZED" in text)


class DigestWarehouse(AuditWarehouse):
    """The digest's reads of Snowflake (its own connection)."""

    def order_lines(self, days: tuple[date, date], zone: ZoneInfo) -> list[OrderLine]:
        """The order lines of both days: streamed, then those of history not streamed."""
        start = _day_bounds(min(days), zone)[0] - DATING_MARGIN.total_seconds()
        end = _day_bounds(max(days), zone)[1] + DATING_MARGIN.total_seconds()
        with self.cursor() as cur:
            cur.execute(ORDERS, (start, end))
            streamed = [streamed_line(json.loads(content), float(ts), zone) for content, ts in cur.fetchall()]
        seen = {line.line_id for line in streamed}
        prefixes = [(d + timedelta(days=shift)).isoformat() for d in days for shift in (-1, 0, 1)]
        try:
            with self.cursor() as cur:
                cur.execute(HISTORY, tuple(prefixes))
                history = cur.fetchall()
        except ProgrammingError as exc:
            if not _missing(exc, "BATCH_DATA"):
                raise
            history = []  # no history loaded
        loaded = [OrderLine(str(line_id), _shop_day(ordered_at, 0.0, zone), int(product), name, int(quantity),
                            earned(int(quantity), unit_price, discount, total))
                  for line_id, ordered_at, product, name, quantity, unit_price, discount, total in history
                  if str(line_id) not in seen]
        return [line for line in streamed + loaded if line.day in days]

    def stock_places(self, today: date, zone: ZoneInfo) -> list[tuple]:
        first, last = pace_window(today)
        with self.cursor() as cur:
            cur.execute(STOCK_PLACES, (_day_bounds(first, zone)[0], _day_bounds(last, zone)[1]))
            return cur.fetchall()

    def letters(self, day: date, zone: ZoneInfo) -> dict[str, int]:
        try:
            with self.cursor() as cur:
                cur.execute(LETTERS, _day_bounds(day, zone))
                return {str(kind): int(count) for kind, count in cur.fetchall()}
        except ProgrammingError as exc:
            if not _missing(exc, "DLQ_EVENTS"):
                raise
            return {}  # no dead letter stored yet


async def completeness(settings: Settings, warehouse: DigestWarehouse) -> tuple[datetime | None, str]:
    """Up to when every sale is in the figures: the audit's proof that each offset below the group's committed one
    is stored once, and the oldest event not committed yet (now when there is none); or why it cannot be said."""
    started = datetime.now().astimezone()
    try:
        topic_id = await current_topic_id(settings.kafka_bootstrap, settings.sales_topic)
        audits = await audit_partitions(settings, warehouse, topic_id, Counter())
    except Exception as exc:  # Kafka or Snowflake away: the digest still goes, saying so
        return None, f"l'audit n'a pas pu être fait ({type(exc).__name__})"
    missing = sum(len(a.missing) for a in audits)
    doubled = sum(len(a.doubled) for a in audits)
    if missing or doubled:
        return None, f"l'audit a trouvé {missing} événement(s) manquant(s) et {doubled} en double"
    # The audit's own committed offsets: what it proved stored is what the figures, read after it, hold at least.
    committed = {a.partition: a.committed for a in audits}
    oldest: list[float] = []
    async with group_less_consumer(settings.kafka_bootstrap) as consumer:
        tps = [TopicPartition(settings.sales_topic, p) for p in committed]
        for tp, (start, end) in (await log_bounds(consumer, tps)).items():
            first = max(start, committed[tp.partition] or 0)
            if first < end:
                async for record in records(consumer, tp, first, first + 1):
                    oldest.append(record.timestamp / 1000)
    if oldest:
        return datetime.fromtimestamp(min(oldest)).astimezone(), ""
    return started, ""


async def gather(settings: Settings, now: datetime | None = None) -> Digest:
    """The digest of the shop day of `now` (default: now, in SHOP_TIMEZONE)."""
    zone = ZoneInfo(settings.shop_timezone)
    day = (now or datetime.now(zone)).astimezone(zone).date()
    week_before = day - timedelta(days=7)
    warehouse = DigestWarehouse(settings)
    try:
        # The audit first: the figures read after it hold at least every event it proved stored.
        complete_until, incomplete = await completeness(settings, warehouse)
        lines = await asyncio.to_thread(warehouse.order_lines, (day, week_before), zone)
        places = await asyncio.to_thread(warehouse.stock_places, day, zone)
        letters = await asyncio.to_thread(warehouse.letters, day, zone)
    finally:
        await asyncio.to_thread(warehouse.reset)
    today = [line for line in lines if line.day == day]
    return Digest(day, day_figures(today), day_figures(line for line in lines if line.day == week_before),
                  best_sellers(today), low_stock(places, settings), letters, complete_until, incomplete,
                  made_at=datetime.fromtimestamp(time.time(), tz=zone))
