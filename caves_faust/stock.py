"""Per-product stock: running stock and tumbling-window figures, in Faust tables partitioned by product.

Valid events become `StockMovement`s re-keyed by product id on an internal topic (whatever key the producer
used), so that each product's tables live on exactly one partition. Kafka delivers at least once, so
every table value remembers the last source offset it applied per source partition: a replayed
movement is recognised and applied once, and the stock stays equal to a recomputation after any crash.
"""

from __future__ import annotations

from datetime import timedelta
from faust.types import EventT, StreamT

from caves_faust import metrics
from caves_faust.app import app, sales_topic, settings
from caves_faust.models import ORDER_CREATED, ProductStock, StockMovement, WindowFigures
from caves_faust.validation import InvalidEvent, ValidEvent, validate

stock_movements_topic = app.topic(
    f"{settings.app_id}-stock-movements",
    key_type=str,
    value_type=StockMovement,
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
    .relative_to_field(StockMovement.timestamp)
)


def movement_of(valid: ValidEvent, event: EventT) -> StockMovement:
    """What a valid event does to its product's stock."""
    sales_event = valid.event
    message = event.message
    common = {
        "product_id": str(sales_event.product_id),
        "source_partition": message.partition,
        "source_offset": message.offset,
        "timestamp": message.timestamp,
    }
    if sales_event.event_type == ORDER_CREATED:
        return StockMovement(
            **common,
            quantity_change=-sales_event.quantity,
            units_sold=sales_event.quantity,
            revenue=sales_event.total_price or 0.0,
            order_count=1,
        )
    return StockMovement(**common, quantity_change=sales_event.quantity_change)


def apply_to_stock(current: ProductStock, movement: StockMovement) -> ProductStock | None:
    """The new running stock, or None when this movement was already applied (a replay)."""
    source = str(movement.source_partition)
    if movement.source_offset <= current.applied.get(source, -1):
        return None
    return ProductStock(
        stock=current.stock + movement.quantity_change,
        applied={**current.applied, source: movement.source_offset},
    )


def apply_to_window(current: WindowFigures, movement: StockMovement) -> WindowFigures | None:
    """The window's new figures, or None when this movement was already counted in it."""
    source = str(movement.source_partition)
    if movement.source_offset <= current.applied.get(source, -1):
        return None
    is_order = movement.order_count > 0
    return WindowFigures(
        units_sold=current.units_sold + movement.units_sold,
        revenue=round(current.revenue + movement.revenue, 2),
        net_adjustment=current.net_adjustment + (0 if is_order else movement.quantity_change),
        order_count=current.order_count + movement.order_count,
        applied={**current.applied, source: movement.source_offset},
    )


@app.agent(sales_topic, name="stock_intake")
async def stock_intake(stream: StreamT) -> None:
    """Valid sales events -> stock movements keyed by product (invalid ones are the sink's to dead-letter)."""
    async for event in stream.events():
        try:
            valid = validate(event.message.value)
        except InvalidEvent:
            continue
        movement = movement_of(valid, event)
        await stock_movements_topic.send(key=movement.product_id, value=movement)


@app.agent(stock_movements_topic, name="stock_tables")
async def stock_tables(movements: StreamT[StockMovement]) -> None:
    async for movement in movements:
        window = apply_to_window(window_table[movement.product_id].current(), movement)
        if window is not None:
            window_table[movement.product_id] = window
        stock = apply_to_stock(stock_table[movement.product_id], movement)
        if stock is not None:
            stock_table[movement.product_id] = stock
            metrics.stock_level.labels(product_id=movement.product_id).set(stock.stock)
