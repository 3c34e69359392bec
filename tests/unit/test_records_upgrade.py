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

# Fields added since (issue 28: stock per location and its mails), with defaults so that older values decode.
ADDED: dict[type, set[str]] = {
    StockMovements: {"places", "product_name", "bottle_size_liters", "source_topic_id"},
    ProductStock: {"locations", "sold", "low", "outbox", "mails", "product_name", "bottle_size_liters"},
}

NOW = [
    StockMovements(product_id="1001", source_partition=3, movements=[Movement(41, 1764590400.25, -2, 2, 37.8, 1)]),
    ProductStock(stock=118, applied={"3": 41}),
    WindowFigures(units_sold=2, revenue=37.8, net_adjustment=0, order_count=1, applied={"3": 41}),
    OrderCreated(event_type="ORDER_CREATED", product_id=1001, order_line_id="OL-1", customer_id=7, quantity=2),
    InventoryAdjusted(event_type="INVENTORY_ADJUSTED", product_id=1001, event_id="ADJ-1", quantity_change=24,
                      adjustment_type="REPLENISHMENT"),
]


@pytest.mark.parametrize("record", NOW, ids=lambda r: type(r).__name__)
def test_a_value_written_now_is_byte_for_byte_what_the_worker_wrote_before_the_move(record):
    """Byte for byte when nothing was added since; else the same fields, values and namespace, plus the new ones."""
    added = ADDED.get(type(record), set())
    if not added:
        assert record.dumps() == WRITTEN_BEFORE[type(record)]
        return
    written = json.loads(record.dumps())
    assert set(written) - set(json.loads(WRITTEN_BEFORE[type(record)])) == added
    assert {k: v for k, v in written.items() if k not in added} == json.loads(WRITTEN_BEFORE[type(record)])


@pytest.mark.parametrize("record", NOW, ids=lambda r: type(r).__name__)
def test_a_value_written_before_the_move_decodes_as_a_table_or_topic_reads_it(record):
    """Through Faust's serializers, with the record type a table or topic is declared with, and with none (the
    namespace alone names the class, as for a value read without a declared type)."""
    written = WRITTEN_BEFORE[type(record)]
    assert app.serializers.loads_value(type(record), written) == record
    assert app.serializers.loads_value(None, written, serializer="json") == record
    assert json.loads(written)["__faust"]["ns"] == f"caves_faust.models.{type(record).__name__}"
