"""The stock gauge on /metrics: the stock of the products this worker owns."""

from __future__ import annotations

from caves_faust.faust_app import app
from caves_faust.observability import metrics
from caves_faust.observability.lag import PROBE_SECONDS, export_exactly
from caves_faust.stock.tables import local_stock, tables_ready


@app.timer(PROBE_SECONDS)
async def export_stock_levels() -> None:
    """The stock of the products this worker owns now, the only place the gauge is set: it also fills it after a
    restart and drops the products whose partition went to another worker."""
    if not tables_ready():
        return  # partial figures would show as drops
    export_exactly(metrics.stock_level, {(product_id,): stock for product_id, stock in local_stock().items()})
