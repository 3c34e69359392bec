"""A history file read back: its `sales` table in batches, in order_line_id order, each row checked.

Bounded memory: rows come through a cursor, `batch_size` at a time. A row is a `CheckedSale` (its values as
Snowflake will get them) or a `BadRow` (its order_line_id, or its rowid when it has none, and the reason); a bad
row never stops the rest. SQLite types values per value, not per column: every value's type is checked here.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

from caves_faust.history.generation import TABLE

COLUMNS = ("order_line_id", "ordered_at", "customer_id", "product_id", "product_name", "category", "quantity",
           "unit_price", "discount", "total_price", "bottle_size_liters", "sales_channel")
REQUIRED = ("order_line_id", "ordered_at", "customer_id", "product_id", "quantity")
INTEGERS = ("order_line_id", "customer_id", "product_id", "quantity")
NUMBERS = ("unit_price", "discount", "total_price", "bottle_size_liters")
TEXTS = ("product_name", "category", "sales_channel")
SHOWN_CHARS = 40  # of a bad value, in its reason
# The file's rows in order_line_id order (statements are constants: values are never formatted into SQL).
COLUMN_LIST = ", ".join(COLUMNS)
READ_ROWS = f"SELECT rowid, {COLUMN_LIST} FROM {TABLE} ORDER BY order_line_id, rowid"


class UnreadableFile(Exception):
    """Not a history file: missing, not SQLite, or without the `sales` table and its columns."""


@dataclass(frozen=True)
class CheckedSale:
    values: tuple[Any, ...]  # in COLUMNS' order, ordered_at as ISO 8601 with its offset

    @property
    def order_line_id(self) -> int:
        return int(self.values[0])


@dataclass(frozen=True)
class BadRow:
    where: str  # "order_line_id 12" or "rowid 7" (a row without an order_line_id)
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


def check(values: dict[str, Any]) -> CheckedSale | BadRow:
    """A row of the file, as its columns' values, checked like an ORDER_CREATED event (docs: History input)."""
    line_id = values.get("order_line_id")
    where = (f"order_line_id {line_id}" if _is_integer(line_id)
             else f"rowid {values.get('rowid')}" + ("" if line_id is None else f" (order_line_id {_short(line_id)})"))
    reason = _reason(values)
    if reason:
        return BadRow(where, reason)
    checked = {**values, "ordered_at": datetime.fromisoformat(values["ordered_at"]).isoformat()}
    return CheckedSale(tuple(checked[name] for name in COLUMNS))


def check_row(row: tuple[Any, ...]) -> CheckedSale | BadRow:
    """`check` for a row as read: (rowid, *COLUMNS). A good row passes one quick test (it is the common case of a
    million); a row that fails it goes through `check`, which says why."""
    _, line_id, moment, customer, product, name, category, quantity, price, discount, total, bottle, channel = row
    if (type(line_id) is int and type(customer) is int and type(product) is int and type(quantity) is int
            and line_id > 0 and customer > 0 and product > 0 and quantity > 0 and type(moment) is str
            and all(v is None or (type(v) in (int, float) and 0 <= v < math.inf)
                    for v in (price, discount, total, bottle))
            and (discount is None or discount <= 1)
            and all(v is None or type(v) is str for v in (name, category, channel))):
        try:
            parsed = datetime.fromisoformat(moment)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return CheckedSale((line_id, parsed.isoformat(), *row[3:]))
    return check(dict(zip(("rowid", *COLUMNS), row, strict=True)))


def _reason(values: dict[str, Any]) -> str | None:
    for name in REQUIRED:
        if values.get(name) is None:
            return f"missing {name}"
    for name in INTEGERS:
        if not _is_integer(values[name]):
            return f"{name} must be an integer, got {_short(values[name])}"
    if values["quantity"] <= 0:
        return f"quantity must be > 0, got {values['quantity']}"
    for name in ("order_line_id", "customer_id", "product_id"):
        if values[name] <= 0:
            return f"{name} must be > 0, got {values[name]}"
    moment = values["ordered_at"]
    if not isinstance(moment, str):
        return f"ordered_at must be ISO 8601 text, got {_short(moment)}"
    try:
        parsed = datetime.fromisoformat(moment)
    except ValueError:
        return f"ordered_at is not ISO 8601: {_short(moment)}"
    if parsed.tzinfo is None:
        return f"ordered_at has no UTC offset: {_short(moment)}"
    for name in NUMBERS:
        value = values.get(name)
        if value is not None and not (_is_integer(value) or isinstance(value, float) and math.isfinite(value)):
            return f"{name} must be a number, got {_short(value)}"
        if value is not None and value < 0:
            return f"{name} must be >= 0, got {value}"
    if values.get("discount") is not None and values["discount"] > 1:
        return f"discount must be a fraction between 0 and 1, got {values['discount']}"
    for name in TEXTS:
        if values.get(name) is not None and not isinstance(values[name], str):
            return f"{name} must be text, got {_short(values[name])}"
    return None


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "..."


class HistoryFile:
    """A SQLite file's `sales` table, opened read-only."""

    def __init__(self, path: Path):
        self.path = path
        if not path.is_file():
            raise UnreadableFile(f"{path}: no such file")
        try:
            self.db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            found = {row[1] for row in self.db.execute(f"PRAGMA table_info({TABLE})")}
        except sqlite3.DatabaseError as exc:
            raise UnreadableFile(f"{path}: not a SQLite file ({exc})") from None
        if not found:
            raise UnreadableFile(f"{path}: no table {TABLE!r}")
        missing = [name for name in COLUMNS if name not in found]
        if missing:
            raise UnreadableFile(f"{path}: table {TABLE!r} lacks the columns {', '.join(missing)}")

    def count(self) -> int:
        return int(self.db.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0])

    def batches(self, batch_size: int) -> Iterator[list[CheckedSale | BadRow]]:
        """The rows, checked, in order_line_id order; a second row with the same order_line_id is bad."""
        cursor = self.db.execute(READ_ROWS)
        previous: int | None = None
        while rows := cursor.fetchmany(batch_size):
            batch: list[CheckedSale | BadRow] = []
            for row in rows:
                checked = check_row(row)
                if isinstance(checked, CheckedSale):
                    if checked.order_line_id == previous:
                        checked = BadRow(f"order_line_id {previous}", "order_line_id twice in the file")
                    else:
                        previous = checked.order_line_id
                batch.append(checked)
            yield batch

    def close(self) -> None:
        self.db.close()
