"""The warehouse layers (`faust -A caves_faust elt`, dbt) against the embedded Snowflake, from events sent to Kafka.

One pipeline for the module, built up in order (dbt takes seconds to start: each build is shared by the
assertions it can serve): a first corpus and a build; a second build with nothing new; a worker killed while a
second corpus flows, a row committed late with an earlier INGESTION_TIME, builds before and after its commit;
then a planted data-quality failure caught by the worker's scheduled build. Every expected figure is recomputed
here, in Python, from the events the test sent and the Kafka timestamps the broker gave them.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Iterator
from zoneinfo import ZoneInfo

import pytest

from tests.corpus import Case, cases
from tests.delivery import BackgroundProducer, Sent, assert_exactly_once
from tests.harness import Pipeline, Stack, Worker, module_pipeline, wait_until

pytestmark = pytest.mark.integration

SHOP = ZoneInfo("Europe/Paris")  # SHOP_TIMEZONE's default
CENT = Decimal("0.01")
CATEGORIES = ["Rouge", "Blanc", "Rosé", "Effervescent", "Spiritueux"]
CHANNELS = ["E-com", "Boutique Paris", "Boutique Lyon", "Boutique Bordeaux"]
NOW = datetime.now(timezone.utc)
# Around midnight in Paris, winter (UTC+1) and summer (UTC+2), with offsets other than Z, and recent ones (the
# last 7 days' sales); None: no event_timestamp, the Kafka timestamp tells the date.
MOMENTS = [
    "2026-01-15T23:30:00.250+00:00", "2026-01-15T22:59:59+00:00", "2026-07-10T22:15:00Z",
    "2026-07-10T21:59:00.5+00:00", "2026-07-11T01:30:00+02:00", "2026-03-29T00:30:00-05:00", None,
    (NOW - timedelta(days=2)).isoformat(timespec="milliseconds"), (NOW - timedelta(days=30)).isoformat(), None,
]


def order(n: int, name_suffix: str = "") -> dict:
    product = 3000 + n % 9
    event = {
        "event_type": "ORDER_CREATED", "order_line_id": 500_000 + n, "customer_id": 1 + n % 23, "product_id": product,
        "product_name": f"Cuvée {product}{name_suffix}", "category": CATEGORIES[product % 5],
        "quantity": 1 + n % 7, "unit_price": [7.9, 12.5, 33.33, 64.0][n % 4], "bottle_size_liters": 0.75,
        "sales_channel": CHANNELS[n % 4], "loyalty": {"carte": "Or"},
    }
    if n % 3 == 0:
        event["discount"] = [0.05, 0.1, 0.2][n % 9 // 3]
    if n % 5:  # else: no total_price, net revenue from quantity, unit price and discount
        event["total_price"] = float(_money(Decimal(str(event["quantity"])) * Decimal(str(event["unit_price"]))
                                            * (1 - Decimal(str(event.get("discount", 0))))))
    if MOMENTS[n % len(MOMENTS)] is not None:
        event["event_timestamp"] = MOMENTS[n % len(MOMENTS)]
    return event


def adjustment(n: int) -> dict:
    kind = ["REPLENISHMENT", "CORRECTION", "SPOILAGE"][n % 3]
    change = {"REPLENISHMENT": 12 * (1 + n % 4), "CORRECTION": (-1) ** n * (1 + n % 5), "SPOILAGE": -(1 + n % 3)}[kind]
    event = {"event_type": "INVENTORY_ADJUSTED", "event_id": f"adj-{n}", "product_id": 3000 + n % 11,
             "quantity_change": change, "adjustment_type": kind, "warehouse": "Entrepôt Paris-Bercy"}
    if MOMENTS[n % len(MOMENTS)] is not None:
        event["event_timestamp"] = MOMENTS[n % len(MOMENTS)]
    return event


def corpus(start: int, count: int, name_suffix: str = "") -> list[Case]:
    """Orders (7 in 10) and adjustments, every one valid; products 3009 and 3010 are only ever adjusted."""
    return cases(order(n, name_suffix) if n % 10 < 7 else adjustment(n) for n in range(start, start + count))


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


# --- the recomputation: from the events and their Kafka timestamps only ---

def when(event: dict, kafka_ms: int) -> datetime:
    if "event_timestamp" in event:
        return datetime.fromisoformat(event["event_timestamp"].replace("Z", "+00:00"))
    return datetime.fromtimestamp(kafka_ms / 1000, timezone.utc)


def expected(events: list[tuple[dict, int, tuple[int, int]]], built_at: datetime) -> dict[str, Any]:
    """The four analytics tables for (event, Kafka timestamp in ms, (partition, offset)) triples."""
    daily: dict = defaultdict(lambda: [0, 0, Decimal(0), Decimal(0)])
    products: dict = defaultdict(lambda: {"name": None, "category": None, "latest": None,
                                          "orders": 0, "units": 0, "revenue": Decimal(0)})
    customers: dict = defaultdict(lambda: [0, 0, Decimal(0), None, None])
    stock: dict = defaultdict(lambda: {"adjusted": 0, "ordered": 0, "week": 0, "last": None})
    for event, kafka_ms, position in events:
        moment, product = when(event, kafka_ms), event["product_id"]
        movement = stock[product]
        movement["last"] = max(filter(None, [movement["last"], moment]))
        products[product]  # every product seen is in the dimension
        if event["event_type"] == "INVENTORY_ADJUSTED":
            movement["adjusted"] += event["quantity_change"]
            continue
        quantity = event["quantity"]
        gross = _money(quantity * Decimal(str(event["unit_price"])))
        net = (Decimal(str(event["total_price"])) if "total_price" in event
               else _money(gross * (1 - Decimal(str(event.get("discount", 0))))))
        day = daily[(moment.astimezone(SHOP).date(), event["sales_channel"])]
        day[0] += 1
        day[1] += quantity
        day[2] += net
        day[3] += max(gross - net, Decimal(0))
        entry = products[product]
        entry["orders"] += 1
        entry["units"] += quantity
        entry["revenue"] += net
        if entry["latest"] is None or (moment, position) > entry["latest"]:
            entry.update(latest=(moment, position), name=event["product_name"], category=event["category"])
        customer = customers[event["customer_id"]]
        customer[0] += 1
        customer[1] += quantity
        customer[2] += net
        customer[3] = min(filter(None, [customer[3], moment]))
        customer[4] = max(filter(None, [customer[4], moment]))
        movement["ordered"] += quantity
        if moment >= built_at - timedelta(days=7):
            movement["week"] += quantity
    inventory = {}
    for product, m in stock.items():
        level = m["adjusted"] - m["ordered"]
        cover = 0.0 if level <= 0 else (round(level / (m["week"] / 7), 1) if m["week"] else None)
        inventory[product] = (products[product]["name"], products[product]["category"], level, m["adjusted"],
                              m["ordered"], m["week"], m["last"], cover)
    return {
        "DAILY_SALES": {key: tuple(value) for key, value in daily.items()},
        "PRODUCT_PERFORMANCE": {p: (e["name"], e["category"], e["orders"], e["units"], e["revenue"])
                                for p, e in products.items()},
        "CUSTOMER_METRICS": {c: tuple(value) for c, value in customers.items()},
        "INVENTORY_STATUS": inventory,
    }


# --- what the warehouse holds ---

QUERIES = {
    "DAILY_SALES": "SELECT SALES_DATE, SALES_CHANNEL, ORDERS, UNITS, REVENUE, DISCOUNT_AMOUNT FROM PROD.DAILY_SALES",
    "PRODUCT_PERFORMANCE": "SELECT PRODUCT_ID, PRODUCT_NAME, CATEGORY, ORDERS, UNITS_SOLD, REVENUE "
                           "FROM PROD.PRODUCT_PERFORMANCE",
    "CUSTOMER_METRICS": "SELECT CUSTOMER_ID, ORDERS, UNITS, REVENUE, FIRST_ORDER_AT, LAST_ORDER_AT "
                        "FROM PROD.CUSTOMER_METRICS",
    "INVENTORY_STATUS": "SELECT PRODUCT_ID, PRODUCT_NAME, CATEGORY, STOCK, UNITS_ADJUSTED, UNITS_ORDERED, "
                        "UNITS_SOLD_LAST_7_DAYS, LAST_MOVEMENT_AT, DAYS_OF_COVER FROM PROD.INVENTORY_STATUS",
}
KEY_COLUMNS = {"DAILY_SALES": 2, "PRODUCT_PERFORMANCE": 1, "CUSTOMER_METRICS": 1, "INVENTORY_STATUS": 1}


def analytics(pipeline: Pipeline) -> dict[str, dict]:
    tables = {}
    for table, sql in QUERIES.items():
        keys = KEY_COLUMNS[table]
        rows = pipeline.stack.query(pipeline.database, sql)
        tables[table] = {(row[0] if keys == 1 else tuple(row[:keys])): tuple(_plain(v) for v in row[keys:])
                         for row in rows}
        assert len(tables[table]) == len(rows), f"{table}: a key twice"
    tables["INVENTORY_STATUS"] = {product: (*row[:-1], None if row[-1] is None else round(float(row[-1]), 1))
                                  for product, row in tables["INVENTORY_STATUS"].items()}
    return tables


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal) and value == value.to_integral_value() and value.as_tuple().exponent == 0:
        return int(value)
    return value


def staged(pipeline: Pipeline) -> dict[str, int]:
    return {table: pipeline.stack.query(pipeline.database, f"SELECT COUNT(*) FROM STAGING.{table}")[0][0]
            for table in ("STG_ORDER_LINES", "STG_INVENTORY_ADJUSTMENTS")}


def build(pipeline: Pipeline) -> datetime:
    """One `elt`, which must succeed: when it started."""
    started = datetime.now(timezone.utc)
    result = pipeline.elt()
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"elt: success in [\d.]+s: \d+ models, \d+ tests", result.stdout), result.stdout
    return started


@pytest.fixture(scope="module")
def pipeline(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    with module_pipeline(stack, tmp_path_factory.mktemp("warehouse"), "warehouse_layers") as created:
        yield created


def start(pipeline: Pipeline, index: int, **env: str) -> Worker:
    worker = pipeline.worker(index, **env)
    pipeline.started_workers.append(worker)  # type: ignore[attr-defined]
    return worker.start()


class Sales:
    """What the module sent, and where Kafka put it: the input of every recomputation."""

    def __init__(self) -> None:
        self.sent = Sent()
        self.extra: list[tuple[dict, int, tuple[int, int]]] = []  # rows written to Snowflake by the test itself

    def events(self, pipeline: Pipeline) -> list[tuple[dict, int, tuple[int, int]]]:
        timestamps = {(r.partition, r.offset): r.timestamp for r in pipeline.read_topic(pipeline.sales_topic)}
        valid, _ = self.sent.split()
        return [(event, timestamps[position], position) for position, event in valid.items()] + self.extra


@pytest.fixture(scope="module")
def sales() -> Sales:
    return Sales()


def test_every_figure_equals_a_recomputation_from_the_events(pipeline, sales):
    worker = start(pipeline, 0)
    sales.sent.produce(pipeline, corpus(0, 400))
    assert_exactly_once(pipeline, sales.sent, worker)

    built_at = build(pipeline)

    assert analytics(pipeline) == expected(sales.events(pipeline), built_at)
    orders = sum(json.loads(p)["event_type"] == "ORDER_CREATED" for p in sales.sent.payloads.values())
    assert staged(pipeline) == {"STG_ORDER_LINES": orders, "STG_INVENTORY_ADJUSTMENTS": 400 - orders}


def test_a_second_build_with_no_new_rows_changes_nothing(pipeline, sales):
    before, staged_before = analytics(pipeline), staged(pipeline)
    build(pipeline)
    assert staged(pipeline) == staged_before
    assert analytics(pipeline) == before


def test_rows_stored_between_builds_a_crash_and_a_late_commit_are_each_counted_once(pipeline, sales):
    # A writer whose transaction began before the next rows and commits after a build has run: its row has an
    # earlier INGESTION_TIME than rows the build took. It is on a partition the worker does not write (the
    # sink commits a partition's rows in offset order: a late commit is always another partition's).
    late_event = json.loads(corpus(7000, 1, name_suffix=" (millésime)")[0].payload)
    late_position = (pipeline.partitions, 0)
    late_ms = int(time.time() * 1000)
    late = pipeline.stack.snowflake_connection(pipeline.database)
    cur = late.cursor()
    cur.execute("BEGIN")
    cur.execute(
        "INSERT INTO RAW_EVENTS_STREAM (EVENT_TYPE, PRODUCT_ID, CUSTOMER_ID, EVENT_METADATA, EVENT_CONTENT) "
        "SELECT 'ORDER_CREATED', 3000, 1, PARSE_JSON(%s), PARSE_JSON(%s)",
        (json.dumps({"topic": pipeline.sales_topic, "partition": late_position[0], "offset": 0,
                     "timestamp": late_ms / 1000}), json.dumps(late_event)),
    )
    with kept_open(cur):
        # The second corpus flows while the worker is killed and restarted: the sink skips what it replays.
        producer = BackgroundProducer(pipeline, corpus(400, 1500, name_suffix=" (nouvel étiquetage)"), sales.sent)
        wait_until(lambda: pipeline.row_count() > 700, 90, "rows of the second corpus")
        pipeline.started_workers[-1].kill()
        worker = start(pipeline, 0)
        assert_exactly_once(pipeline, producer.join(), worker)

        built_at = build(pipeline)  # the late row is not committed yet: not in this build
    assert analytics(pipeline) == expected(sales.events(pipeline), built_at)

    cur.execute("COMMIT")
    [(late_ingested, latest_ingested)] = pipeline.stack.query(
        pipeline.database,
        "SELECT MIN(IFF(EVENT_METADATA:partition::INTEGER = %s, INGESTION_TIME, NULL)), "
        "MAX(INGESTION_TIME) FROM RAW_EVENTS_STREAM", (late_position[0],))
    assert late_ingested < latest_ingested  # a build selecting rows by INGESTION_TIME would skip it
    late.close()
    sales.extra.append((late_event, late_ms, late_position))

    built_at = build(pipeline)
    assert analytics(pipeline) == expected(sales.events(pipeline), built_at)
    assert sum(staged(pipeline).values()) == len(sales.events(pipeline))


@contextlib.contextmanager
def kept_open(session: Any) -> Iterator[None]:
    """Keeps `session`'s transaction in use meanwhile: the embedded Snowflake aborts one idle for 10 s."""
    done = threading.Event()

    def touch() -> None:
        while not done.wait(2):
            session.execute("SELECT 1")

    toucher = threading.Thread(target=touch, daemon=True)
    toucher.start()
    try:
        yield
    finally:
        done.set()
        toucher.join()


def test_a_data_quality_failure_fails_its_test_in_the_scheduled_build_and_the_worker_carries_on(pipeline, sales):
    bad = {**json.loads(corpus(9000, 1)[0].payload), "category": "Bière"}  # valid for the worker, not for the catalogue
    sales.sent.produce(pipeline, cases([bad]))  # valid for the worker: only the warehouse's tests know categories
    wait_until(lambda: pipeline.row_count() == len(sales.events(pipeline)), 60, "the planted event stored")
    pipeline.started_workers[-1].stop()
    worker = start(pipeline, 0, ELT_INTERVAL_SECONDS="2")  # its first build comes 2 s after it starts

    def failed_build() -> dict[str, str] | None:
        status, text = worker.get("/metrics")
        lines = text if status == 200 else ""
        figures = dict(re.findall(r'^(elt_\w+(?:\{outcome="\w+"\})?) (\S+)$', lines, re.MULTILINE))
        return figures if float(figures.get('elt_runs_total{outcome="failed"}', 0)) >= 1 else None

    figures = wait_until(failed_build, 180, "a failed scheduled build on /metrics")
    assert float(figures["elt_failed_tests"]) == 1
    assert float(figures["elt_interval_seconds"]) == 2
    assert float(figures["elt_skipped_ticks_total"]) >= 1  # builds take longer than 2 s: ticks skipped, not piled up
    log = worker.log_text()
    assert re.search(r"elt: failed in .*\n  test accepted_values_stg_order_lines_CATEGORY\S*: fail: Got 1 result", log)
    sales.sent.produce(pipeline, corpus(9001, 1))
    wait_until(lambda: pipeline.row_count() == len(sales.events(pipeline)), 60, "the worker still storing events")
    worker.stop()

    result = pipeline.elt()
    assert result.returncode == 1, result.stdout
    assert "test accepted_values_stg_order_lines_CATEGORY" in result.stdout
