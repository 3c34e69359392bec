"""`faust -A caves_faust audit`: proof that nothing was lost or doubled on the way to Snowflake, and that the stock
served equals the warehouse's. The leader also runs it every AUDIT_INTERVAL_SECONDS, into metrics.

Invariant checked: for every partition of the sales topic, each offset below the worker group's committed offset is
stored exactly once, as a row of RAW_EVENTS_STREAM or as a dead letter (or, for a replayed dead letter sent more
than once, as the row of one of its copies: `replays`). It holds at any moment, under traffic: the
worker commits an offset only once its event is stored, and the audit reads the committed offsets before what is
stored. An offset with neither that the log no longer holds (retention, compaction, a transaction marker) is
reported as such: nothing shows an event was ever there. Reads only, with group-less consumers (`topic_log`): the
worker's offsets never move.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import aiohttp
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from snowflake.connector.errors import ProgrammingError

from caves_faust.cli import ExitCodeCommand
from caves_faust.dlq.log import once, read_letters
from caves_faust.events.origin import Origin, origin_of
from caves_faust.faust_app import app, settings
from caves_faust.kafka.admin import committed_offsets, partition_count
from caves_faust.kafka.topic_ids import current_topic_id
from caves_faust.kafka.topic_log import group_less_consumer, log_bounds, records
from caves_faust.observability import metrics
from caves_faust.settings import Settings
from caves_faust.sink.replays import stored_copies
from caves_faust.snowflake.connection import Warehouse
from caves_faust.snowflake.errors import WAREHOUSE_ERRORS
from caves_faust.snowflake.tables import RAW_EVENTS_TABLE

log = logging.getLogger(__name__)

FIRST_SHOWN = 10  # offsets named per partition and kind of problem
CHUNK_OFFSETS = 100_000  # offsets per warehouse query: memory stays bounded on long partitions
# The served stock moves about a flush after the rows: compare again before calling a difference a mismatch.
STOCK_ATTEMPTS = 5
STOCK_RETRY_SECONDS = 2.0
STOCK_TIMEOUT_SECONDS = 10.0

# The current life of the topic's rows (a topic deleted and created again restarts its offsets at 0), and those
# written before topic ids were kept.
ROW_OFFSETS = """SELECT EVENT_METADATA:offset::INTEGER, COUNT(*) FROM RAW_EVENTS_STREAM
    WHERE EVENT_METADATA:topic::VARCHAR = ? AND EVENT_METADATA:partition::INTEGER = ?
      AND COALESCE(EVENT_METADATA:topic_id::VARCHAR, ?) IS NOT DISTINCT FROM ?
      AND EVENT_METADATA:offset::INTEGER >= ? AND EVENT_METADATA:offset::INTEGER < ?
    GROUP BY 1"""
# Letters whose replay is stored more than once (the copies are at different offsets: each counts once above).
DOUBLED_REPLAYS = """SELECT EVENT_METADATA:replayed_from:topic::VARCHAR, EVENT_METADATA:replayed_from:topic_id::VARCHAR,
           EVENT_METADATA:replayed_from:partition::INTEGER, EVENT_METADATA:replayed_from:offset::INTEGER, COUNT(*)
    FROM RAW_EVENTS_STREAM WHERE EVENT_METADATA:topic::VARCHAR = ? AND EVENT_METADATA:replayed_from IS NOT NULL
    GROUP BY 1, 2, 3, 4 HAVING COUNT(*) > 1"""
# The stock straight from the stored events (the dbt models may not have run yet).
RAW_STOCK = """SELECT PRODUCT_ID,
       SUM(CASE WHEN EVENT_TYPE = 'INVENTORY_ADJUSTED' THEN EVENT_CONTENT:quantity_change::INTEGER
                ELSE -EVENT_CONTENT:quantity::INTEGER END) AS STOCK
    FROM RAW_EVENTS_STREAM GROUP BY PRODUCT_ID"""
MODEL = "INVENTORY_STATUS"
MODEL_STOCK = f"SELECT PRODUCT_ID, STOCK FROM PROD.{MODEL}"


def account(start: int, end: int, rows: Counter[int], letters: Counter[int]
            ) -> tuple[list[int], dict[int, tuple[int, int]]]:
    """(offsets in [start, end) stored neither way, offset -> (rows, letters) for those stored more than once)."""
    unaccounted, doubled = [], {}
    for offset in range(start, end):
        stored = rows[offset], letters[offset]
        if stored == (0, 0):
            unaccounted.append(offset)
        elif sum(stored) > 1:
            doubled[offset] = stored
    return unaccounted, doubled


@dataclass
class PartitionAudit:
    partition: int
    committed: int | None  # None: the group never committed it, nothing to account for
    rows: int = 0
    letters: int = 0
    missing: list[int] = field(default_factory=list)
    doubled: dict[int, tuple[int, int]] = field(default_factory=dict)
    replays: int = 0  # copies of a replayed dead letter whose row is another copy's (`replays`)
    not_in_log: int = 0

    @property
    def clean(self) -> bool:
        return not self.missing and not self.doubled


@dataclass
class StockAudit:
    source: str  # where the warehouse's stock came from
    products: int = 0
    mismatches: dict[str, tuple[int, int]] = field(default_factory=dict)  # product -> (served, warehouse)
    not_modelled: int = 0  # products the model shows behind, by rows it has not modelled yet
    error: str | None = None  # why the comparison could not be made

    @property
    def clean(self) -> bool:
        return self.error is None and not self.mismatches


@dataclass
class AuditReport:
    topic: str
    group: str
    partitions: list[PartitionAudit]
    doubled_replays: dict[Origin, int]  # letter -> rows storing its replay, where more than one
    stock: StockAudit
    # Copies of letters the DLQ topic holds more than once (a producer's retry): counted once, no doubling.
    repeated_letters: int = 0
    topic_id: str | None = None  # the life of the topic audited (None: the broker gives no topic ids)

    @property
    def missing(self) -> int:
        return sum(len(p.missing) for p in self.partitions)

    @property
    def doubled(self) -> int:
        return sum(len(p.doubled) for p in self.partitions) + len(self.doubled_replays)

    @property
    def clean(self) -> bool:
        return self.stock.clean and all(p.clean for p in self.partitions) and not self.doubled_replays

    def lines(self) -> list[str]:
        header = ("partition", "committed", "rows", "letters", "replays", "missing", "doubled", "not in log")
        table = [header] + [
            (str(p.partition), "-" if p.committed is None else str(p.committed), str(p.rows), str(p.letters),
             str(p.replays), str(len(p.missing)), str(len(p.doubled)), str(p.not_in_log))
            for p in self.partitions
        ]
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        life = "" if self.topic_id is None else f" (topic id {self.topic_id})"
        lines = [f"audit: topic {self.topic}{life}, consumer group {self.group}"]
        lines += ["  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in table]
        for p in self.partitions:
            lines += [f"missing: partition {p.partition} offset {offset}" for offset in p.missing[:FIRST_SHOWN]]
            lines += [f"doubled: partition {p.partition} offset {offset} ({rows} rows, {letters} dead letters)"
                      for offset, (rows, letters) in list(p.doubled.items())[:FIRST_SHOWN]]
        lines += [f"doubled: dead letter {o.topic} {o.partition}/{o.offset} replayed into {rows} rows"
                  for o, rows in sorted(self.doubled_replays.items())[:FIRST_SHOWN]]
        if self.repeated_letters:
            lines.append(f"dead letters: {self.repeated_letters} repeated copies on the DLQ topic counted "
                         "once (a letter sent again after a broker wrote it without answering)")
        lines.append(self._stock_line())
        verdict = "clean" if self.clean else (f"NOT CLEAN: {self.missing} missing, {self.doubled} doubled, "
                                              f"{len(self.stock.mismatches)} stock mismatches")
        lines.append(f"audit: {verdict}")
        return lines

    def _stock_line(self) -> str:
        stock = self.stock
        if stock.error:
            return f"stock: not compared: {stock.error}"
        lines = [f"stock mismatch: product {product} served {served}, warehouse {stored}"
                 for product, (served, stored) in sorted(stock.mismatches.items())]
        behind = f", {stock.not_modelled} products with rows not modelled yet" if stock.not_modelled else ""
        return "\n".join(lines + [f"stock: {stock.products} products compared with {stock.source}{behind}"])


class AuditWarehouse(Warehouse):
    """The audit's reads of Snowflake (its own connection)."""

    def row_offsets(self, topic: str, topic_id: str | None, partition: int, start: int, end: int) -> Counter[int]:
        with self.cursor() as cur:
            cur.execute(ROW_OFFSETS, (topic, partition, topic_id, topic_id, start, end))
            return Counter({int(offset): int(count) for offset, count in cur.fetchall()})

    def doubled_replays(self, topic: str) -> dict[Origin, int]:
        with self.cursor() as cur:
            cur.execute(DOUBLED_REPLAYS, (topic,))
            return {Origin(str(t), int(p), int(o), topic_id=life): int(n) for t, life, p, o, n in cur.fetchall()}

    def raw_stock(self) -> dict[str, int]:
        with self.cursor() as cur:
            cur.execute(RAW_STOCK)
            return _by_product(cur.fetchall())

    def model_stock(self) -> dict[str, int] | None:
        """INVENTORY_STATUS's stock, or None while the model does not exist."""
        try:
            with self.cursor() as cur:
                cur.execute(MODEL_STOCK)
                return _by_product(cur.fetchall())
        except ProgrammingError:
            return None


def _by_product(rows: list) -> dict[str, int]:
    return {str(product): int(stock) for product, stock in rows}


async def audit_partitions(settings: Settings, warehouse: AuditWarehouse, topic_id: str | None,
                           repeated: Counter[tuple[str, int, int]]) -> list[PartitionAudit]:
    """Each partition's offsets below the group's committed one, stored or dead-lettered, in the topic's current
    life `topic_id` (rows and letters of a topic since deleted and created again are not its); a letter's repeated
    copies in the DLQ topic are counted once, and in `repeated`."""
    topic = settings.sales_topic
    # Committed offsets first: whatever is stored after this read is above them, hence not looked for.
    committed = await committed_offsets(settings.kafka_bootstrap, settings.app_id, topic)
    letters: dict[int, Counter[int]] = defaultdict(Counter)
    async for letter in once(read_letters(settings.kafka_bootstrap, settings.dlq_topic), repeated):
        source = letter.source
        if source is not None and source[0] == topic and letter.topic_id in (None, topic_id):
            letters[source[1]][source[2]] += 1
    audits = []
    async with group_less_consumer(settings.kafka_bootstrap) as consumer:
        for partition in range(await partition_count(settings.kafka_bootstrap, topic)):
            audit = PartitionAudit(partition, committed.get(partition))
            unaccounted: list[int] = []
            for start in range(0, audit.committed or 0, CHUNK_OFFSETS):
                end = min(start + CHUNK_OFFSETS, audit.committed or 0)
                rows = await asyncio.to_thread(warehouse.row_offsets, topic, topic_id, partition, start, end)
                in_chunk = Counter({o: n for o, n in letters[partition].items() if start <= o < end})
                missing, doubled = account(start, end, rows, in_chunk)
                audit.rows += sum(rows.values())
                audit.letters += sum(in_chunk.values())
                unaccounted += missing
                audit.doubled.update(doubled)
            held = await _held(consumer, TopicPartition(topic, partition), unaccounted)
            stored = await asyncio.to_thread(stored_copies, warehouse, {o for o in held.values() if o})
            audit.missing = [offset for offset, origin in held.items() if origin not in stored]
            audit.replays = len(held) - len(audit.missing)
            audit.not_in_log = len(unaccounted) - len(held)
            audits.append(audit)
    return audits


async def _held(consumer, tp: TopicPartition, offsets: list[int]) -> dict[int, Origin | None]:
    """Those of `offsets` the log still holds a record at -> the letter the record replays, if it is a replay."""
    if not offsets:
        return {}
    wanted = set(offsets)
    (log_start, _), = (await log_bounds(consumer, [tp])).values()
    if max(wanted) < log_start:
        return {}
    return {record.offset: origin_of(record.headers)
            async for record in records(consumer, tp, min(wanted), max(wanted) + 1) if record.offset in wanted}


def differences(served: dict[str, int], stored: dict[str, int]) -> dict[str, tuple[int, int]]:
    """product -> (served, stored) where they differ; a product absent on one side has stock 0 there."""
    return {p: (served.get(p, 0), stored.get(p, 0))
            for p in served.keys() | stored.keys() if served.get(p, 0) != stored.get(p, 0)}


async def served_stock(base_url: str) -> dict[str, int]:
    """What `/stock/` serves (every worker's share, gathered by the one asked)."""
    timeout = aiohttp.ClientTimeout(total=STOCK_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(f"{base_url}/stock/") as response:
        response.raise_for_status()
        body = await response.json()
    return {item["product_id"]: item["stock"] for item in body["products"]}


async def audit_stock(base_url: str, warehouse: AuditWarehouse) -> StockAudit:
    """Served stock against INVENTORY_STATUS where it exists, the rows of RAW_EVENTS_STREAM else. A product the
    model shows otherwise is not a mismatch when the rows agree with the served stock: it has rows not modelled yet."""
    for attempt in range(STOCK_ATTEMPTS):
        try:
            served = await served_stock(base_url)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return StockAudit(RAW_EVENTS_TABLE, error=f"{base_url}/stock/ did not answer: {exc or type(exc).__name__}")
        model = await asyncio.to_thread(warehouse.model_stock)
        raw = await asyncio.to_thread(warehouse.raw_stock)
        off_rows = differences(served, raw)
        if not off_rows or attempt == STOCK_ATTEMPTS - 1:
            break
        await asyncio.sleep(STOCK_RETRY_SECONDS)
    products = len(served.keys() | raw.keys())
    if model is None:
        return StockAudit(RAW_EVENTS_TABLE, products, off_rows)
    off_model = differences(served, model)
    mismatches = {p: (served_units, model.get(p, 0)) for p, (served_units, _) in off_model.items() if p in off_rows}
    return StockAudit(MODEL, products, mismatches, not_modelled=len(off_model) - len(mismatches))


async def run_audit(settings: Settings, stock_url: str) -> AuditReport:
    warehouse = AuditWarehouse(settings)
    try:
        repeated: Counter[tuple[str, int, int]] = Counter()
        topic_id = await current_topic_id(settings.kafka_bootstrap, settings.sales_topic)
        partitions = await audit_partitions(settings, warehouse, topic_id, repeated)
        doubled_replays = await asyncio.to_thread(warehouse.doubled_replays, settings.sales_topic)
        stock = await audit_stock(stock_url, warehouse)
    finally:
        await asyncio.to_thread(warehouse.reset)
    return AuditReport(settings.sales_topic, settings.app_id, partitions, doubled_replays, stock,
                       repeated.total(), topic_id)


def export(report: AuditReport) -> None:
    metrics.audit_missing_offsets.set(report.missing)
    metrics.audit_doubled_offsets.set(report.doubled)
    metrics.audit_stock_mismatches.set(len(report.stock.mismatches))
    metrics.audit_last_run_timestamp.set(time.time())


def _stock_url() -> str:
    return str(app.conf.canonical_url).rstrip("/")


@app.command(base=ExitCodeCommand)
async def audit(self: ExitCodeCommand) -> int:
    """Prove every offset below the committed one is stored exactly once, and the served stock is the warehouse's:
    exit 0 only then."""
    report = await run_audit(settings, _stock_url())
    for line in report.lines():
        self.say(line)
    return 0 if report.clean else 1


if settings.audit_interval_seconds:
    @app.timer(settings.audit_interval_seconds)
    async def audit_on_interval() -> None:
        """The leader audits; the others show zeros, so that a former leader's findings do not linger."""
        if not app.is_leader():
            for gauge in (metrics.audit_missing_offsets, metrics.audit_doubled_offsets, metrics.audit_stock_mismatches):
                gauge.set(0)
            return
        try:
            report = await run_audit(settings, _stock_url())
        except (*WAREHOUSE_ERRORS, KafkaError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("audit could not run: %s: %s", type(exc).__name__, exc)
            return
        export(report)
        log.log(logging.INFO if report.clean else logging.WARNING, "%s", " | ".join(report.lines()))
