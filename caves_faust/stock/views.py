"""Stock views on the worker's web server: `/stock/` and `/stock/{product_id}/`, JSON.

Each worker holds the tables of the partitions it owns: a product lookup is routed to its owner
(Faust's table_route), and the list gathers every owner's share.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from typing import Any

import aiohttp
from faust.web import Request, Response, View

from caves_faust.faust_app import app, settings
from caves_faust.stock.locations import stock_by_location
from caves_faust.stock.tables import local_positions, stock_table, tables_ready, window_table

PEER_TIMEOUT_SECONDS = 5


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat()


def current_window(product_id: str) -> dict[str, Any]:
    figures = window_table[product_id].now()
    size = settings.stock_window_seconds
    start = (time.time() // size) * size
    return {
        "start": _iso(start),
        "end": _iso(start + size),
        "units_sold": figures.units_sold,
        "revenue": figures.revenue,
        "net_adjustment": figures.net_adjustment,
        "order_count": figures.order_count,
    }


def recovering(web: View) -> Response | None:
    """A 503 while this worker rebuilds its tables from their changelogs: its figures would be partial."""
    if tables_ready():
        return None
    return web.json({"error": "tables are recovering, retry shortly"}, status=503, headers={"Retry-After": "2"})


@app.page("/stock/")
class StockList(View):
    """Every product's running stock and its locations, gathered from every worker (`?scope=local`: this worker's
    only)."""

    async def get(self, request: Request) -> Response:
        busy = recovering(self)
        if busy is not None:
            return busy
        stock = local_positions()
        if request.query.get("scope") != "local":
            peers = self._peers()
            shares = await asyncio.gather(*(self._peer_stock(url) for url in peers), return_exceptions=True)
            failed = [f"{url}: {share}" for url, share in zip(peers, shares, strict=True)
                      if isinstance(share, BaseException)]
            if failed:
                # A partial list would look like missing products: say which worker did not answer instead.
                return self.json({"error": "some workers did not answer", "workers": failed},
                                 status=503, headers={"Retry-After": "2"})
            for share in shares:
                stock.update(share)  # type: ignore[arg-type]
        products = [{"product_id": p, **stock[p]} for p in sorted(stock, key=_product_order)]
        return self.json({"count": len(products), "products": products})

    def _peers(self) -> list[str]:
        me = str(app.conf.canonical_url).rstrip("/")
        hosts = {str(url).rstrip("/") for url in app.router.table_metadata(stock_table.name)}
        return sorted(hosts - {me})

    async def _peer_stock(self, base_url: str) -> dict[str, dict]:
        timeout = aiohttp.ClientTimeout(total=PEER_TIMEOUT_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(f"{base_url}/stock/", params={"scope": "local"}) as response:
                response.raise_for_status()
                body = await response.json()
        return {item["product_id"]: {"stock": item["stock"], "locations": item["locations"]}
                for item in body["products"]}


def _product_order(product_id: str) -> tuple[int, str]:
    return (int(product_id), "") if product_id.isdigit() else (1 << 62, product_id)


@app.page("/stock/{product_id}/")
@app.table_route(table=stock_table, match_info="product_id")
async def product_stock(web: View, request: Request, product_id: str) -> Response:
    """One product's running stock and the current window's figures (answered by the owning worker)."""
    busy = recovering(web)
    if busy is not None:
        return busy
    if product_id not in stock_table:
        return web.json({"error": f"unknown product {product_id!r}"}, status=404)
    value = stock_table[product_id]
    return web.json({
        "product_id": product_id,
        "stock": value.stock,
        "locations": stock_by_location(value),
        "window": current_window(product_id),
    })
