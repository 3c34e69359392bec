"""Per-product stock: running stock (per location too) and tumbling-window figures, in Faust tables partitioned
by product; the low-stock mails decided with the stock wait in the same value until the mail sender reports them
sent (through the mails-sent topic, keyed like the tables).

Valid events become `StockMovements` re-keyed by product id on an internal topic (whatever key the producer
used), so that each product's tables live on exactly one partition. Kafka delivers at least once, so
every table value remembers the last source offset it applied per source partition: a replayed
movement is recognised and applied once, and the stock stays equal to a recomputation after any crash. A mark is
of one life of the sales topic: when the topic is deleted and created again its offsets restart at 0, and the
new life's movements start from no mark.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Iterable, List

import faust
from faust.types import EventT, StreamT

from caves_faust.events.records import (
    ORDER_CREATED,
    Movement,
    OrderCreated,
    ProductStock,
    StockMovements,
    WindowFigures,
)
from caves_faust.events.validation import ValidEvent
from caves_faust.faust_app import app, settings
from caves_faust.stock.locations import Placing, at_locations, stock_by_location, without_sent

# The most of a product's name the stock keeps (for the mails): real names are a few dozen characters.
PRODUCT_NAME_CHARS = 200
# The mails-sent marks are needed only until the stock agent has cleared them from the outbox (seconds).
MAILS_SENT_RETENTION = timedelta(days=7)

placing = Placing.from_settings(settings)

stock_movements_topic = app.topic(
    f"{settings.app_id}-stock-movements",
    key_type=str,
    value_type=StockMovements,
    # The same key bytes as the tables' changelogs, so that a product's movements, its table rows and
    # Faust's routing of /stock/{product_id}/ all land on the same partition.
    key_serializer="json",
    partitions=settings.topic_partitions,
    internal=True,
)

stock_table = app.Table(
    "stock",
    key_type=str,
    value_type=ProductStock,
    default=ProductStock.empty,
    partitions=settings.topic_partitions,
    help="Running stock per product id",
)



class MailsSent(faust.Record, serializer="json", namespace="caves_faust.stock.MailsSent"):
    """Outbox entries of a product (their numbers) that the mail sender handed to the SMTP server."""

    product_id: str
    numbers: List[int]


mails_sent_topic = app.topic(
    f"{settings.app_id}-mails-sent",
    key_type=str,
    value_type=MailsSent,
    key_serializer="json",  # keyed like the stock table: the marks land on the partition of the product's value
    partitions=settings.topic_partitions,
    retention=MAILS_SENT_RETENTION,
    internal=True,
)

window_table = (
    app.Table(
        "product_window",
        key_type=str,
        value_type=WindowFigures,
        default=WindowFigures.empty,
        partitions=settings.topic_partitions,
        help="Per product: units sold, revenue, net adjustment, order count over tumbling windows",
    )
    .tumbling(timedelta(seconds=settings.stock_window_seconds),
              expires=timedelta(seconds=settings.stock_window_expires_seconds))
    .relative_to_now()  # reads outside a stream (web views) use the wall clock; writes name their window
)


def tables_ready() -> bool:
    """Whether this worker's tables are complete: not being rebuilt from their changelogs (partial figures)."""
    return app.tables.recovery.completed.is_set() and not app.in_recovery  # type: ignore[attr-defined]


def local_stock() -> dict[str, int]:
    """The running stock of the products whose partitions this worker holds."""
    return {product_id: value.stock for product_id, value in stock_table.items()}


def local_positions() -> dict[str, dict]:
    """The stock of the products whose partitions this worker holds, in total and per location."""
    return {product_id: {"stock": value.stock, "locations": stock_by_location(value)}
            for product_id, value in stock_table.items()}


def movement_of(valid: ValidEvent, event: EventT) -> Movement:
    """What a valid event does to its product's stock."""
    sales_event = valid.event
    message = event.message
    if sales_event.event_type == ORDER_CREATED:
        return Movement(message.offset, message.timestamp, -sales_event.quantity, sales_event.quantity,
                        sales_event.total_price or 0.0, 1)
    return Movement(message.offset, message.timestamp, sales_event.quantity_change, 0, 0.0, 0)


def place_of(valid: ValidEvent) -> str:
    """The sales channel of an order, the warehouse of an adjustment ("" when the event names none)."""
    sales_event = valid.event
    if isinstance(sales_event, OrderCreated):
        return sales_event.sales_channel or ""
    return getattr(sales_event, "warehouse", None) or ""


def movements_of(valid_events: Iterable[tuple[ValidEvent, EventT]], topic_id: str | None = None
                 ) -> list[StockMovements]:
    """Valid events (of the life `topic_id` of the sales topic) grouped by product and source partition, in offset
    order, each with where it counts."""
    grouped: dict[tuple[str, int], StockMovements] = {}
    for valid, event in valid_events:
        key = (str(valid.event.product_id), event.message.partition)
        batch = grouped.get(key)
        if batch is None:
            batch = grouped[key] = StockMovements(product_id=key[0], source_partition=key[1], movements=[],
                                                  places=[], source_topic_id=topic_id)
        batch.movements.append(movement_of(valid, event))
        batch.places.append(place_of(valid))
        if isinstance(valid.event, OrderCreated):
            # Bounded: the name rides on every movements message and stock value, and an event may be up to the
            # broker's message size (a 1 MB name would make the stock's own messages too large to send).
            batch.product_name = (valid.event.product_name or "")[:PRODUCT_NAME_CHARS] or batch.product_name
            batch.bottle_size_liters = valid.event.bottle_size_liters or batch.bottle_size_liters
    return list(grouped.values())


async def send_movements(valid_events: Iterable[tuple[ValidEvent, EventT]], topic_id: str | None = None) -> None:
    """Hand a batch's movements to the producer, whose buffer Faust flushes before it commits offsets:
    one message per product and source partition, as the per-message cost is what bounds this path."""
    for batch in movements_of(valid_events, topic_id):
        await stock_movements_topic.send(key=batch.product_id, value=batch)


def mark_key(batch: StockMovements) -> str:
    """The key of a batch's source in the values' `applied` marks, built here only: the partition, in the life of
    the sales topic it was read from."""
    partition = str(batch.source_partition)
    return partition if batch.source_topic_id is None else f"{batch.source_topic_id}:{partition}"


def _unapplied(applied: dict[str, int], source: str,
               movements: Iterable[Movement]) -> tuple[list[Movement], dict[str, int]]:
    """The movements not applied yet, and the marks after them. A replay carries offsets already applied, and
    after a rebalance Faust may hand over the same message twice, even within one batch: each offset counts once.
    A partition keeps the mark of one life of the topic; a mark of no known life (written before topic ids were
    kept) is taken for the batch's."""
    partition = source.rpartition(":")[2]
    others = {key: mark for key, mark in applied.items() if key.rpartition(":")[2] == partition and key != source}
    mark = applied.get(source, others.get(partition, -1))
    fresh = []
    for movement in movements:
        if movement.offset > mark:
            fresh.append(movement)
            mark = movement.offset
    if not fresh:
        return fresh, applied
    return fresh, {**{k: v for k, v in applied.items() if k not in others}, source: mark}


def apply_to_stock(current: ProductStock, batch: StockMovements) -> ProductStock | None:
    """The new running stock, per location too (with the mails its crossings decide), or None when every
    movement was already applied."""
    fresh, applied = _unapplied(current.applied, mark_key(batch), batch.movements)
    if not fresh:
        return None
    # A message written before locations has no places: its movements count at UNASSIGNED_LOCATION.
    places = dict(zip((m.offset for m in batch.movements), batch.places, strict=False))
    return at_locations(current, fresh, places, placing, batch.product_name, batch.bottle_size_liters,
                        stock=current.stock + sum(m.quantity_change for m in fresh), applied=applied)


def apply_to_window(current: WindowFigures, source: str, movements: list[Movement]) -> WindowFigures | None:
    """One window's new figures, or None when every movement was already counted in it."""
    fresh, applied = _unapplied(current.applied, source, movements)
    if not fresh:
        return None
    return WindowFigures(
        units_sold=current.units_sold + sum(m.units_sold for m in fresh),
        revenue=round(current.revenue + sum(m.revenue for m in fresh), 2),
        net_adjustment=current.net_adjustment + sum(m.quantity_change for m in fresh if not m.order_count),
        order_count=current.order_count + sum(m.order_count for m in fresh),
        applied=applied,
    )


def by_window(movements: list[Movement]) -> dict[float, list[Movement]]:
    """Movements grouped by the start of their tumbling window, each group in offset order."""
    windows: dict[float, list[Movement]] = defaultdict(list)
    for movement in movements:
        windows[window_table.table.window.current(movement.timestamp)[0]].append(movement)  # type: ignore[union-attr]
    return windows


@app.agent(stock_movements_topic, name="stock_tables")
async def stock_tables(batches: StreamT[StockMovements]) -> None:
    async for batch in batches:
        product_id, source = batch.product_id, mark_key(batch)
        for start, movements in by_window(batch.movements).items():
            window = window_table.relative_to(start)  # type: ignore[attr-defined]
            figures = apply_to_window(window[product_id].value(), source, movements)
            if figures is not None:
                window[product_id] = figures
        stock = apply_to_stock(stock_table[product_id], batch)
        if stock is not None:
            stock_table[product_id] = stock


@app.agent(mails_sent_topic, name="mails_sent")
async def mails_sent(marks: StreamT[MailsSent]) -> None:
    """Clears the outbox entries the mail sender reports sent (a mark applied twice clears nothing more)."""
    async for mark in marks:
        if mark.product_id in stock_table:
            cleared = without_sent(stock_table[mark.product_id], mark.numbers)
            if cleared is not None:
                stock_table[mark.product_id] = cleared
