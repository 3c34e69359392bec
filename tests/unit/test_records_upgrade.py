"""Values written by the worker before its records moved (caves_faust.models -> caves_faust.events.records) still
decode, and values written now carry the same namespace: a worker of the new layout starts on the stock tables'
changelogs, RocksDB and stock-movements topic that an older one left."""

from __future__ import annotations

import json

import pytest

from caves_faust.events.records import (
    InventoryAdjusted,
    Movement,
    OrderCreated,
    ProductStock,
    StockMovements,
    WindowFigures,
)
from caves_faust.faust_app import app

# Written by the worker at the commit before the move (its records defined in caves_faust/models.py).
WRITTEN_BEFORE: dict[type, bytes] = {
    StockMovements: b'{"product_id":"1001","source_partition":3,"movements":[[41,1764590400.25,-2,2,37.8,1]],'
                    b'"__faust":{"ns":"caves_faust.models.StockMovements"}}',
    ProductStock: b'{"stock":118,"applied":{"3":41},"__faust":{"ns":"caves_faust.models.ProductStock"}}',
    WindowFigures: b'{"units_sold":2,"revenue":37.8,"net_adjustment":0,"order_count":1,"applied":{"3":41},'
                   b'"__faust":{"ns":"caves_faust.models.WindowFigures"}}',
    OrderCreated: b'{"event_type":"ORDER_CREATED","product_id":1001,"order_line_id":"OL-1","customer_id":7,'
                  b'"quantity":2,"product_name":null,"category":null,"unit_price":null,"discount":null,'
                  b'"total_price":null,"bottle_size_liters":null,"sales_channel":null,"event_timestamp":null,'
                  b'"__faust":{"ns":"caves_faust.models.OrderCreated"}}',
    InventoryAdjusted: b'{"event_type":"INVENTORY_ADJUSTED","product_id":1001,"event_id":"ADJ-1",'
                       b'"quantity_change":24,"adjustment_type":"REPLENISHMENT","warehouse":null,"batch_number":null,'
                       b'"event_timestamp":null,"__faust":{"ns":"caves_faust.models.InventoryAdjusted"}}',
}

NOW = [
    StockMovements(product_id="1001", source_partition=3, movements=[Movement(41, 1764590400.25, -2, 2, 37.8, 1)]),
    ProductStock(stock=118, applied={"3": 41}),
    WindowFigures(units_sold=2, revenue=37.8, net_adjustment=0, order_count=1, applied={"3": 41}),
    OrderCreated(event_type="ORDER_CREATED", product_id=1001, order_line_id="OL-1", customer_id=7, quantity=2),
    InventoryAdjusted(event_type="INVENTORY_ADJUSTED", product_id=1001, event_id="ADJ-1", quantity_change=24,
                      adjustment_type="REPLENISHMENT"),
]


# Fields added since, with their defaults (what a value written before them decodes with).
ADDED_SINCE: dict[type, dict[str, object]] = {StockMovements: {"source_topic_id": None}}


@pytest.mark.parametrize("record", NOW, ids=lambda r: type(r).__name__)
def test_a_value_written_now_is_what_the_worker_wrote_before_the_move(record):
    """Byte for byte, but for the fields added since (at the end, with their defaults)."""
    written = json.loads(record.dumps())
    added = ADDED_SINCE.get(type(record), {})
    assert {name: written.pop(name) for name in added} == added
    assert json.dumps(written, separators=(",", ":")).encode() == WRITTEN_BEFORE[type(record)]


@pytest.mark.parametrize("record", NOW, ids=lambda r: type(r).__name__)
def test_a_value_written_before_the_move_decodes_as_a_table_or_topic_reads_it(record):
    """Through Faust's serializers, with the record type a table or topic is declared with, and with none (the
    namespace alone names the class, as for a value read without a declared type)."""
    written = WRITTEN_BEFORE[type(record)]
    assert app.serializers.loads_value(type(record), written) == record
    assert app.serializers.loads_value(None, written, serializer="json") == record
    assert json.loads(written)["__faust"]["ns"] == f"caves_faust.models.{type(record).__name__}"
