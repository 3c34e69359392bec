"""`history load` into the embedded Snowflake, and the warehouse layers over history and stream together.

The history files are made here, from this module's own corpus (not the product's generator): one loaded while a
real `history load` process is killed with SIGKILL, then loaded again, and again; an overlapping file with bad
rows. Then a worker streams order lines (new ones, late ones on days of the history, and streamed copies of
history lines), and two builds follow. Every expected figure is recomputed here from the files and the events.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Iterator
from zoneinfo import ZoneInfo

import pytest
import snowflake.connector

from tests.corpus import cases, write_history
from tests.delivery import Sent, assert_exactly_once
from tests.harness import Pipeline, Stack, module_pipeline, wait_until

pytestmark = pytest.mark.integration

SHOP = ZoneInfo("Europe/Paris")  # SHOP_TIMEZONE's default
CENT = Decimal("0.01")
CHANNELS = ["E-com", "Boutique Paris", "Boutique Lyon", "Boutique Bordeaux"]
CATEGORIES = ["Rouge", "Blanc", "Rosé", "Effervescent", "Spiritueux"]
OFFSETS = [timezone.utc, timezone(timedelta(hours=1)), timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))]
HISTORY_LINES = 3000
FIRST_HISTORY_ID = 60_000_000
YEAR_START = datetime(2025, 1, 1, 0, 7, tzinfo=timezone.utc)


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def history_line(n: int, line_id: int | None = None) -> dict[str, Any]:
    """A year of lines, 173 minutes apart (every hour of the day, both sides of midnight in Paris, both sides of
    the time changes), written with various UTC offsets."""
    product = 4000 + n % 7
    quantity, price, discount = 1 + n % 5, [9.5, 14.2, 31.0, 58.75][n % 4], [0.0, 0.1, None][n % 3]
    total = None if n % 7 == 0 else float(_money(quantity * Decimal(str(price)) * (1 - Decimal(str(discount or 0)))))
    moment = YEAR_START + timedelta(minutes=173 * n)
    return {
        "order_line_id": line_id or FIRST_HISTORY_ID + n, "ordered_at": moment.astimezone(OFFSETS[n % 4]).isoformat(),
        "customer_id": 1 + n % 17, "product_id": product, "product_name": f"Vin {product}",
        "category": CATEGORIES[product % 5], "quantity": quantity, "unit_price": price, "discount": discount,
        "total_price": total, "bottle_size_liters": 0.75, "sales_channel": CHANNELS[n % 4],
    }


HISTORY = [history_line(n) for n in range(HISTORY_LINES)]
# The overlapping file: 100 lines of the first, 50 new ones, 3 bad ones (with the reasons `history load` gives).
NEW_IN_SECOND = [history_line(HISTORY_LINES + n, FIRST_HISTORY_ID + 100_000 + n) for n in range(50)]
BAD: dict[int, tuple[dict[str, Any], str]] = {
    FIRST_HISTORY_ID + 200_001: ({"quantity": 0}, "quantity must be > 0, got 0"),
    FIRST_HISTORY_ID + 200_002: ({"quantity": "six"}, "quantity must be an integer, got 'six'"),
    FIRST_HISTORY_ID + 200_003: ({"customer_id": None}, "missing customer_id"),
}
SECOND = HISTORY[100:200] + NEW_IN_SECOND + [
    {**history_line(n, line_id), **change} for n, (line_id, (change, _)) in enumerate(BAD.items())]


# Streamed order lines: new ones (recent), late ones (on days of the history), copies of history lines (another
# day, channel, product, customer and quantity: the streamed copy counts).
NOW = datetime.now(timezone.utc).replace(microsecond=0)
REPLACED = [FIRST_HISTORY_ID + 37 * k for k in range(10)]


def streamed(k: int) -> dict[str, Any]:
    if k < 20:
        line_id, moment = 70_000_000 + k, NOW - timedelta(days=k, seconds=17)
    elif k < 30:
        line_id, moment = 70_000_100 + k, YEAR_START + timedelta(days=11 * k, hours=5, seconds=17)
    else:
        line_id, moment = REPLACED[k - 30], YEAR_START + timedelta(days=300 + k, hours=9, seconds=17)
    product = 4000 + (k * 3) % 8  # 4007: a product only the stream sells
    event = {
        "event_type": "ORDER_CREATED", "order_line_id": line_id, "customer_id": 30 + k % 5, "product_id": product,
        "product_name": f"Vin {product} (étiquette 2026)", "category": CATEGORIES[product % 5],
        "quantity": 1 + k % 6, "unit_price": 12.5, "sales_channel": CHANNELS[(k + 1) % 4],
        "event_timestamp": moment.isoformat(),
    }
    if k % 2:
        event["discount"] = 0.2
    return event


STREAMED = [streamed(k) for k in range(40)]


# --- the recomputation ---

def facts(history: list[dict[str, Any]], events: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """One entry per order line: history first, then the streamed copies over them."""
    lines: dict[int, dict[str, Any]] = {}
    for line in history:
        lines[line["order_line_id"]] = {**line, "moment": datetime.fromisoformat(line["ordered_at"])}
    for event in events:
        lines[event["order_line_id"]] = {**event, "moment": datetime.fromisoformat(event["event_timestamp"])}
    return lines


def net(line: dict[str, Any]) -> Decimal:
    if line.get("total_price") is not None:
        return _money(Decimal(str(line["total_price"])))
    gross = _money(line["quantity"] * Decimal(str(line["unit_price"])))
    return _money(gross * (1 - Decimal(str(line.get("discount") or 0))))


def expected(lines: dict[int, dict[str, Any]]) -> dict[str, dict]:
    daily: dict = defaultdict(lambda: [0, 0, Decimal(0)])
    products: dict = defaultdict(lambda: [None, 0, 0, Decimal(0)])
    for line in lines.values():
        day = daily[(line["moment"].astimezone(SHOP).date(), line["sales_channel"])]
        day[0] += 1
        day[1] += line["quantity"]
        day[2] += net(line)
        product = products[line["product_id"]]
        if product[0] is None or line["moment"] > product[0][0]:
            product[0] = (line["moment"], line["product_name"], line["category"])
        product[1] += 1
        product[2] += line["quantity"]
        product[3] += net(line)
    return {
        "DAILY_SALES": {key: tuple(value) for key, value in daily.items()},
        "PRODUCT_PERFORMANCE": {p: (v[0][1], v[0][2], v[1], v[2], v[3]) for p, v in products.items()},
    }


QUERIES = {
    "DAILY_SALES": "SELECT SALES_DATE, SALES_CHANNEL, ORDERS, UNITS, REVENUE FROM PROD.DAILY_SALES",
    "PRODUCT_PERFORMANCE": "SELECT PRODUCT_ID, PRODUCT_NAME, CATEGORY, ORDERS, UNITS_SOLD, REVENUE "
                           "FROM PROD.PRODUCT_PERFORMANCE",
}


def layers(pipeline: Pipeline) -> dict[str, dict]:
    tables = {}
    for table, sql in QUERIES.items():
        keys = 2 if table == "DAILY_SALES" else 1
        rows = pipeline.query(sql)
        tables[table] = {(row[0] if keys == 1 else tuple(row[:keys])): tuple(
            int(v) if isinstance(v, Decimal) and v.as_tuple().exponent == 0 else v for v in row[keys:])
            for row in rows}
        assert len(tables[table]) == len(rows), f"{table}: a key twice"
    return tables


# --- driving the product ---

@pytest.fixture(scope="module")
def pipeline(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    with module_pipeline(stack, tmp_path_factory.mktemp("history"), "history") as created:
        yield created


def finished(process: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


def loaded(pipeline: Pipeline) -> tuple[int, int] | None:
    try:
        [(rows, lines)] = pipeline.query("SELECT COUNT(*), COUNT(DISTINCT ORDER_LINE_ID) FROM BATCH_DATA.SALES")
    except snowflake.connector.errors.ProgrammingError:
        return None  # not created yet
    return rows, lines


def summary(output: str) -> tuple[int, int, int]:
    found = re.search(r"history load: \w+, .*: ([\d,]+) rows read in [\d.]+s \([\d,]+ rows/s\): ([\d,]+) loaded "
                      r"now, ([\d,]+) already there, ([\d,]+) bad", output)
    assert found, output
    read, now, already, bad = (int(g.replace(",", "")) for g in found.groups())
    assert read == now + already + bad, output
    return now, already, bad


def build(pipeline: Pipeline) -> dict[str, int]:
    """One `elt`, which must succeed: the rows each incremental model wrote."""
    result = pipeline.elt()
    assert result.returncode == 0, result.stdout + result.stderr
    written = re.search(r"^  rows written: (.*)$", result.stdout, re.MULTILINE)
    assert written, result.stdout
    return {name: int(rows.replace(",", "")) for name, rows in
            (item.rsplit(" ", 1) for item in written.group(1).split(", "))}


def test_a_file_loaded_killed_again_and_overlapped_leaves_each_line_once_and_names_bad_rows(pipeline):
    first = write_history(pipeline.home / "first.db", HISTORY)
    second = write_history(pipeline.home / "second.db", SECOND)

    # Killed in the middle: batches of 50 rows, each its own transaction.
    killed = pipeline.history_load(first, HISTORY_LOAD_BATCH_ROWS="50")
    wait_until(lambda: (loaded(pipeline) or (0, 0))[0] > 0, 60, "a first batch committed", interval=0.05)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    after_kill = loaded(pipeline)
    assert after_kill is not None and after_kill[0] == after_kill[1] < HISTORY_LINES, "the load ended before its kill"

    code, output = finished(pipeline.history_load(first))
    assert code == 0, output
    now, already, bad = summary(output)
    assert (now + already, bad) == (HISTORY_LINES, 0) and already >= after_kill[0], output
    code, output = finished(pipeline.history_load(first))
    assert (code, summary(output)) == (0, (0, HISTORY_LINES, 0)), output
    assert loaded(pipeline) == (HISTORY_LINES, HISTORY_LINES)

    code, output = finished(pipeline.history_load(second))
    assert code == 1, output
    assert summary(output) == (len(NEW_IN_SECOND), 100, len(BAD))
    for line_id, (_, reason) in BAD.items():
        assert f"history load: bad row, not loaded: order_line_id {line_id}: {reason}" in output
    total = HISTORY_LINES + len(NEW_IN_SECOND)
    assert loaded(pipeline) == (total, total)
    [(loaded_from,)] = pipeline.query("SELECT COUNT(DISTINCT LOADED_FROM) FROM BATCH_DATA.SALES "
                                      "WHERE LOADED_AT IS NOT NULL")
    assert loaded_from == 2


def test_the_layers_count_history_and_stream_each_line_once_and_grow_with_the_new_rows_only(pipeline):
    history = HISTORY + NEW_IN_SECOND  # what the first test loaded
    worker = pipeline.worker(0)
    pipeline.started_workers.append(worker)
    worker.start()  # creates RAW_EVENTS_STREAM: the layers read it
    # A DAILY_SALES left by a build from before the sales tables were incremental (no FACTS_BUILT_AT), stale.
    pipeline.query("CREATE SCHEMA IF NOT EXISTS PROD")
    pipeline.query("CREATE TABLE PROD.DAILY_SALES AS SELECT '2020-01-01'::DATE AS SALES_DATE, "
                   "'E-com' AS SALES_CHANNEL, 1 AS ORDERS, 1 AS UNITS, 9.99::NUMBER(14, 2) AS REVENUE, "
                   "0::NUMBER(14, 2) AS DISCOUNT_AMOUNT")
    build(pipeline)
    assert layers(pipeline) == expected(facts(history, []))

    sent = Sent()
    sent.produce(pipeline, cases(STREAMED))
    assert_exactly_once(pipeline, sent, worker)
    worker.stop()

    written = build(pipeline)
    assert layers(pipeline) == expected(facts(history, STREAMED))
    # Only the new rows: the streamed lines, and the days, products and customers they (or the history lines they
    # replace) touch, each recounted once.
    replaced = [line for line in history if line["order_line_id"] in REPLACED]
    touched = [*(facts([], STREAMED).values()), *facts(replaced, []).values()]
    assert written == {
        "stg_inventory_adjustments": 0, "stg_order_lines": len(STREAMED), "fct_sales": len(STREAMED),
        "daily_sales": len({(line["moment"].astimezone(SHOP).date(), line["sales_channel"]) for line in touched}),
        "product_performance": len({line["product_id"] for line in touched}),
        "customer_metrics": len({line["customer_id"] for line in touched}),
    }

    # A line streamed again, on another day, channel, product and customer (a producer that sent it twice): written
    # here on a partition the worker does not write, as a second producer's copy would be. The new copy counts, once;
    # the old copy's day, product and customer are recounted without it.
    again = {**STREAMED[3], "event_timestamp": (NOW - timedelta(days=60, seconds=17)).isoformat(),
             "sales_channel": "Boutique Bordeaux", "product_id": 4006, "customer_id": 36, "quantity": 11}
    pipeline.query(
        "INSERT INTO RAW_EVENTS_STREAM (EVENT_TYPE, PRODUCT_ID, CUSTOMER_ID, EVENT_METADATA, EVENT_CONTENT) "
        "SELECT 'ORDER_CREATED', 4006, 36, PARSE_JSON(%s), PARSE_JSON(%s)",
        (json.dumps({"topic": pipeline.sales_topic, "partition": pipeline.partitions, "offset": 0,
                     "timestamp": NOW.timestamp()}), json.dumps(again)))
    written = build(pipeline)
    assert layers(pipeline) == expected(facts(history, [*STREAMED, again]))
    touched = [*facts([], [STREAMED[3]]).values(), *facts([], [again]).values()]
    assert written == {
        "stg_inventory_adjustments": 0, "stg_order_lines": 1, "fct_sales": 1,
        "daily_sales": len({(line["moment"].astimezone(SHOP).date(), line["sales_channel"]) for line in touched}),
        "product_performance": 2, "customer_metrics": 2,
    }
    assert build(pipeline) == dict.fromkeys(written, 0)
