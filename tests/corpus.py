"""The events tests send and what they expect of them: event builders, expected stock, fake Faust events."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterable, cast

from faust.events import Event
from faust.types import AppT, Message

PRODUCTS = [1000 + i for i in range(12)]
# The contract's rule for nesting (docs/reliability.md, known limits): deeper JSON is invalid, as not_json.
MAX_DEPTH = 128


@dataclass(frozen=True)
class Case:
    """One input of a test corpus and what the pipeline must make of it: a row (`error_type` None) or a dead
    letter of this error type (`snowflake_rejected`: a valid event the test's table refuses)."""

    payload: bytes
    error_type: str | None = None


def cases(events: Iterable[dict], error_type: str | None = None) -> list[Case]:
    return [Case(payload, error_type) for payload in encoded(events)]


def encoded(events: Iterable[dict]) -> list[bytes]:
    return [json.dumps(e, ensure_ascii=False).encode("utf-8") for e in events]


# --- events ---

def order(n: int, product: int, quantity: int = 2, **extra: object) -> dict:
    """An ORDER_CREATED event, order line `n`; `extra` adds fields or replaces them."""
    return {
        "event_type": "ORDER_CREATED", "order_line_id": n, "customer_id": 1 + n % 150, "product_id": product,
        "quantity": quantity, "unit_price": 12.5, "total_price": round(quantity * 12.5, 2),
        "product_name": f"Cuvée n°{product} 🍷", "sales_channel": "Boutique Paris", **extra,
    }


def adjustment(n: int, product: int, change: int) -> dict:
    return {
        "event_type": "INVENTORY_ADJUSTED", "event_id": f"adj-{n}", "product_id": product,
        "quantity_change": change, "adjustment_type": "REPLENISHMENT" if change > 0 else "SPOILAGE",
        "warehouse": "Entrepôt de Bercy",
    }


def valid_events(count: int, start: int = 0) -> list[dict]:
    """A deterministic mix: 70% orders, 30% adjustments, over a dozen products, with undeclared fields."""
    events = []
    for n in range(start, start + count):
        product = PRODUCTS[n % len(PRODUCTS)]
        if n % 10 < 7:
            events.append(order(n, product, quantity=1 + n % 6, loyalty={"carte": "Or", "points": [n, n * 2]}))
        else:
            events.append(adjustment(n, product, change=(n % 40) - 10 or 5))
    return events


INVALID_PAYLOADS: list[tuple[bytes, str]] = [
    (b"not json at all", "not_json"),
    (b"\xff\xfe\x00 not utf-8", "not_utf8"),
    (b"[1, 2, 3]", "not_object"),
    (b"null", "not_object"),
    (json.dumps({"event_type": "ORDER_DELETED", "product_id": 1000}).encode(), "unknown_event_type"),
    (json.dumps({"event_type": "ORDER_CREATED", "product_id": 1000}).encode(), "missing_field"),
    (json.dumps({**order(1, 1000), "quantity": "six"}).encode(), "wrong_type"),
    (json.dumps({**order(2, 1000), "product_id": True}).encode(), "wrong_type"),
    (json.dumps(order(3, 1000, quantity=0)).encode(), "out_of_range"),
    (json.dumps({**order(4, 1000), "quantity": 10**40}).encode(), "out_of_range"),
    (json.dumps({**adjustment(5, 1000, 3), "adjustment_type": "THEFT"}).encode(), "out_of_range"),
]


INVALID_CASES = [Case(payload, error_type) for payload, error_type in INVALID_PAYLOADS]


# --- the stock they add up to, from the events alone ---

def stock_change(event: dict) -> int:
    """How a valid event moves its product's stock: an order takes its quantity, an adjustment adds its change."""
    return -event["quantity"] if event["event_type"] == "ORDER_CREATED" else event["quantity_change"]


def expected_stock(events: Iterable[dict]) -> dict[str, int]:
    """product id (as `/stock/` names it) -> stock, for these valid events."""
    stock: dict[str, int] = defaultdict(int)
    for event in events:
        stock[str(event["product_id"])] += stock_change(event)
    return dict(stock)


def stock_of(body: Any) -> dict[str, int]:
    """product id -> stock, from the worker's `/stock/` answer."""
    return {p["product_id"]: p["stock"] for p in body["products"]}


# --- fake Faust events, for unit tests ---

def fake_message(partition: int, offset: int, value: bytes = b"{}", key: bytes | None = None,
                 headers: list[tuple[str, bytes]] | None = None, timestamp: float | None = 1_800_000_000.0,
                 topic: str = "sales_events") -> Message:
    """A Kafka message as Faust's consumer hands it over (`timestamp` None: a message without one)."""
    return Message(topic=topic, partition=partition, offset=offset, timestamp=cast(float, timestamp),
                   timestamp_type=0, headers=headers or [], key=key, value=value, checksum=None)


def fake_event(partition: int, offset: int, value: bytes = b"{}", key: bytes | None = None,
               headers: list[tuple[str, bytes]] | None = None, timestamp: float | None = 1_800_000_000.0) -> Event:
    """The event a Faust agent reads from the sales topic: key and value raw bytes, as the worker reads them (no app
    behind it)."""
    message = fake_message(partition, offset, value, key, headers, timestamp)
    return Event(cast(AppT, SimpleNamespace()), key, value, message.headers, message)


# --- history files (`history load`'s input: the contract's SQLite `sales` table) ---

HISTORY_COLUMNS = ("order_line_id", "ordered_at", "customer_id", "product_id", "product_name", "category", "quantity",
                   "unit_price", "discount", "total_price", "bottle_size_liters", "sales_channel")


def write_history(path: Path, lines: Iterable[dict[str, Any]]) -> Path:
    """A history file holding `lines` (dicts keyed by HISTORY_COLUMNS; a missing key is NULL)."""
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE sales (order_line_id INTEGER PRIMARY KEY, ordered_at TEXT, customer_id INTEGER, "
                   "product_id INTEGER, product_name TEXT, category TEXT, quantity INTEGER, unit_price REAL, "
                   "discount REAL, total_price REAL, bottle_size_liters REAL, sales_channel TEXT)")
        db.executemany(f"INSERT INTO sales VALUES ({', '.join('?' * len(HISTORY_COLUMNS))})",
                       [tuple(line.get(c) for c in HISTORY_COLUMNS) for line in lines])
    return path
