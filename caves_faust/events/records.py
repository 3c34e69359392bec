"""The typed sales events of Les Caves d'Albert, and what the stream derives from them."""

from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional

import faust

ORDER_CREATED = "ORDER_CREATED"
INVENTORY_ADJUSTED = "INVENTORY_ADJUSTED"
EVENT_TYPES = (ORDER_CREATED, INVENTORY_ADJUSTED)
ADJUSTMENT_TYPES = ("REPLENISHMENT", "CORRECTION", "SPOILAGE")
CATEGORIES = ("Rouge", "Blanc", "Rosé", "Effervescent", "Spiritueux")

# The records' namespace, written into every serialized value (`__faust.ns`) and in the stock tables' changelogs
# and the stock-movements topic: pinned to the module they were first defined in, so that values written before
# the package was laid out by concern still decode.
NAMESPACE = "caves_faust.models"


# Built only by `validation.py`, which checks every field's JSON type and range first (with error types the DLQ
# reports): Faust's own validation (`validation=True`) would check the same fields again.
class SalesEvent(faust.Record, abstract=True, serializer="json", namespace=f"{NAMESPACE}.SalesEvent"):
    event_type: str
    product_id: int


class OrderCreated(SalesEvent, serializer="json", namespace=f"{NAMESPACE}.OrderCreated"):
    order_line_id: str
    customer_id: int
    quantity: int
    product_name: Optional[str] = None
    category: Optional[str] = None
    unit_price: Optional[float] = None
    discount: Optional[float] = None
    total_price: Optional[float] = None
    bottle_size_liters: Optional[float] = None
    sales_channel: Optional[str] = None
    event_timestamp: Optional[str] = None


class InventoryAdjusted(SalesEvent, serializer="json", namespace=f"{NAMESPACE}.InventoryAdjusted"):
    event_id: str
    quantity_change: int
    adjustment_type: str
    warehouse: Optional[str] = None
    batch_number: Optional[str] = None
    event_timestamp: Optional[str] = None


class Movement(NamedTuple):
    """What one valid event does to its product's stock, with its source offset (to apply it once)."""

    offset: int
    timestamp: float  # Kafka timestamp of the source event, seconds: windows follow event time
    quantity_change: int  # + adjustment, - units ordered
    units_sold: int
    revenue: float
    order_count: int


class StockMovements(faust.Record, serializer="json", namespace=f"{NAMESPACE}.StockMovements"):
    """A product's movements from one source partition, in offset order, keyed by product id.

    One message per product and source partition per intake batch, rather than one per event: the
    per-message cost of Kafka and Faust is what bounds the stock path's throughput.
    """

    product_id: str
    source_partition: int
    movements: List[Movement]
    # Where each movement counts (aligned with `movements`): its order's sales channel or its adjustment's
    # warehouse, as sent; a message written before locations (none) counts at UNASSIGNED_LOCATION. A list beside
    # `movements` rather than a field of Movement: Faust decodes a NamedTuple by position, so an older message
    # (six fields) could not decode into a seventh.
    places: List[str] = []
    # The product as its latest order in the batch names it (for the mails).
    product_name: Optional[str] = None
    bottle_size_liters: Optional[float] = None
    source_topic_id: Optional[str] = None  # which life of the sales topic (events.received.Received)


class ProductStock(faust.Record, serializer="json", namespace=f"{NAMESPACE}.ProductStock"):
    """Running stock of one product, with the last source offset applied per source partition (keyed
    `<topic id>:<partition>`, or `<partition>` alone when the broker gives no topic ids).

    With it, in the same value so that one changelog write changes them together (what makes each low-stock mail
    decided once, whatever crashes): the stock per location (summing to `stock`), the bottles sold per location
    and shop day over the last 30 days (the reorder points' pace), the locations whose `Stock bas` was decided and
    no `Réassort` since, and the mails decided and not yet known sent (the outbox). A value written before these
    fields decodes with them empty: its stock then counts at UNASSIGNED_LOCATION. Defaults are shared: never
    change a value in place, build a new one.
    """

    stock: int
    applied: Dict[str, int]
    locations: Dict[str, int] = {}
    sold: Dict[str, Dict[str, int]] = {}  # location -> shop day (ISO date) -> bottles sold
    low: List[str] = []
    outbox: List[Dict[str, Any]] = []
    mails: int = 0  # mails decided so far: the next one's number
    product_name: Optional[str] = None
    bottle_size_liters: Optional[float] = None

    @classmethod
    def empty(cls) -> "ProductStock":
        return cls(stock=0, applied={})


class WindowFigures(faust.Record, serializer="json", namespace=f"{NAMESPACE}.WindowFigures"):
    """One product's figures over one tumbling window."""

    units_sold: int
    revenue: float
    net_adjustment: int
    order_count: int
    applied: Dict[str, int]

    @classmethod
    def empty(cls) -> "WindowFigures":
        return cls(units_sold=0, revenue=0.0, net_adjustment=0, order_count=0, applied={})
