"""Prometheus metrics of the pipeline (names and labels are part of the contract).

They live in prometheus_client's default registry, which the worker serves at /metrics together with
Faust's own sensor metrics. Label values are bounded: event and error types are fixed sets, partitions
are those of the sales topic, and product ids come from the merchant's catalog. Nothing names the
worker: Prometheus tells workers apart by its `instance` label.
"""

from __future__ import annotations

import collections
import logging
from bisect import bisect_left
from typing import Mapping, Sequence

from prometheus_client import Counter, Gauge, Histogram

from caves_faust.events.records import EVENT_TYPES

log = logging.getLogger(__name__)

BATCH_SIZE_BUCKETS = (1, 10, 25, 50, 100, 200, 500, 1000, 2500, 5000, 10000)
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class BatchHistogram(Histogram):
    """A label-less histogram that also records a batch of observations in one call: prometheus_client has no
    bulk observe, and two locked increments per event cost the event loop more than one pass per batch."""

    def observe_many(self, amounts: Sequence[float]) -> None:
        """The same as `observe(a)` for each amount (a bucket holds what is <= its bound and > the one before)."""
        for bucket, count in collections.Counter(bisect_left(self._upper_bounds, a) for a in amounts).items():
            self._buckets[bucket].inc(count)
        self._sum.inc(sum(amounts))


events_consumed = Counter(
    "kafka_events_consumed", "Events read from the sales topic, by event type and validation status",
    ["event_type", "status"],
)
events_inserted = Counter(
    "snowflake_events_inserted", "Events written to RAW_EVENTS_STREAM", ["event_type"],
)
duplicates_skipped = Counter(
    "snowflake_duplicates_skipped", "Replayed events already in RAW_EVENTS_STREAM, skipped", ["topic"],
)
dlq_messages = Counter("dlq_messages", "Invalid events sent to the DLQ topic", ["error_type"])
batch_size = Histogram("batch_size_events", "Events per flushed batch", buckets=BATCH_SIZE_BUCKETS)
batch_duration = Histogram(
    "batch_processing_duration_seconds", "Time to process a batch: validation, DLQ, Snowflake",
    buckets=DURATION_BUCKETS,
)
insert_duration = Histogram(
    "snowflake_insert_duration_seconds", "Time of the Snowflake transaction of a batch", buckets=DURATION_BUCKETS,
)
current_batch_size = Gauge("current_batch_size", "Events in the batch being written")
last_commit_timestamp = Gauge("last_commit_timestamp", "Unix time of the last batch committed to Snowflake")
event_size = BatchHistogram(
    "kafka_event_size_bytes", "Size of the events read", buckets=(64, 128, 256, 512, 1024, 4096, 16384, 65536, 1048576),
)
snowflake_retries = Counter("snowflake_retries", "Snowflake batch writes retried after an error", ["reason"])
snowflake_failures = Counter("snowflake_failures", "Snowflake batch writes that failed", ["reason"])
dlq_retries = Counter("dlq_retries", "Dead-letter writes to the DLQ topic retried after an error")
snowflake_up = Gauge(
    "snowflake_up", "1 when the last Snowflake write succeeded, 0 during an outage and before the first write",
)
consumer_lag = Gauge(
    "kafka_consumer_lag", "Messages of an assigned sales partition not committed yet (end offset - committed)",
    ["topic", "partition"],
)
stock_level = Gauge("product_stock_units", "Running stock per product (owned partitions)", ["product_id"])
ELT_OUTCOMES = ("success", "failed", "error")  # failed: a model or a test failed; error: dbt could not run
elt_runs = Counter("elt_runs", "Warehouse builds (dbt build) run by this worker, by outcome", ["outcome"])
elt_duration = Histogram("elt_run_duration_seconds", "Time of a warehouse build",
                         buckets=(5, 10, 20, 30, 60, 120, 300, 600, 1200))
elt_last_success = Gauge("elt_last_success_timestamp_seconds",
                         "Unix time of this worker's last successful warehouse build (0: none yet)")
elt_failed_tests = Gauge("elt_failed_tests", "dbt data tests that failed in this worker's last warehouse build")
elt_skipped_ticks = Counter("elt_skipped_ticks",
                            "Scheduled warehouse builds skipped: the previous one was still running")
elt_interval = Gauge("elt_interval_seconds",
                     "ELT_INTERVAL_SECONDS: how often the leader builds the warehouse (0: never)")
# What the last audit found (the leader's; the other workers show 0): see audit.py.
audit_missing_offsets = Gauge(
    "audit_missing_offsets", "Offsets below the committed offset stored neither as a row nor as a dead letter",
)
audit_doubled_offsets = Gauge("audit_doubled_offsets", "Offsets below the committed offset stored more than once")
audit_stock_mismatches = Gauge(
    "audit_stock_mismatch_products", "Products whose served stock differs from the warehouse's",
)
audit_last_run_timestamp = Gauge("audit_last_run_timestamp", "Unix time of the last audit this worker ran (0: none)")
# Stock mails (mail/outbox.py): sent by kind (low, restocked), tries that failed (SMTP outage or refusal), waiting.
mails_sent = Counter("stock_mails_sent", "Stock mails the SMTP server accepted, by kind (low, restocked)", ["kind"])
mails_failing = Counter("stock_mails_failed_tries", "Tries to hand a stock mail to the SMTP server that failed")
mails_waiting = Gauge("stock_mails_waiting", "Stock mails decided and not known sent, in the values this worker owns")
digests_sent = Counter("digest_mails_sent", "Closing-time digests the SMTP server accepted")
# Cost: what each mode is billed on (docs/streaming.md, "What it costs").
streaming_bytes = Counter(
    "snowpipe_streaming_uncompressed_bytes", "Uncompressed NDJSON bytes appended through Snowpipe Streaming",
)
warehouse_seconds = Counter(
    "snowflake_warehouse_seconds", "Seconds the sink's writes keep the warehouse up (gaps up to its auto-suspend)",
)
warehouse_credits_per_hour = Gauge(
    "snowflake_warehouse_credits_per_hour", "Credits per hour of the warehouse the sink writes with (its size)",
)

# The label values the sink records, exported at 0 from the start: a counter series that appears with its
# first increment loses that increment in rate()/increase(), and panels would show "No data" instead of 0.
for _event_type in EVENT_TYPES:
    events_consumed.labels(event_type=_event_type, status="valid")
    events_inserted.labels(event_type=_event_type)
events_consumed.labels(event_type="INVALID", status="invalid")
# Why a Snowflake write failed: unreachable (outage), rows refused for their content (rejected, dead-lettered),
# blocked by another transaction's lock (lock_conflict), the whole transaction refused though each row is accepted
# (batch_refused).
SNOWFLAKE_FAILURE_REASONS = ("outage", "rejected", "lock_conflict", "batch_refused")
for _reason in SNOWFLAKE_FAILURE_REASONS:
    snowflake_failures.labels(reason=_reason)
    if _reason != "rejected":  # rejected rows are dead-lettered, not retried
        snowflake_retries.labels(reason=_reason)

for _kind in ("low", "restocked"):
    mails_sent.labels(kind=_kind)

for _outcome in ELT_OUTCOMES:
    elt_runs.labels(outcome=_outcome)


class SessionStats:
    """Running totals since start (event type, or invalid:<error type>), logged at most once per call of
    `log_if_changed` when they changed."""

    def __init__(self) -> None:
        self.totals: collections.Counter[str] = collections.Counter()
        self._logged: collections.Counter[str] = collections.Counter()

    def count(self, kinds: Mapping[str, int]) -> None:
        self.totals.update(kinds)

    def log_if_changed(self) -> None:
        if self.totals != self._logged:
            self._logged = self.totals.copy()
            log.info("session totals: %s", " ".join(f"{k}={v}" for k, v in sorted(self.totals.items())))
