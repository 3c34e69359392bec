"""What a correct pipeline delivers, checked from outside: rows in Snowflake, dead letters on the DLQ topic and
the stock the worker serves. Shared by the integration and reliability suites.

`Sent` remembers every message a test produced (its corpus case: payload and expected outcome, and its Kafka
coordinates); `assert_exactly_once` waits until the pipeline has caught up and then checks the promise the product
makes against the corpus's own expectation, never the product's validation: every valid event exactly once in
RAW_EVENTS_STREAM with its content as sent, every invalid one exactly once in the DLQ with its payload and the
expected error type, and the served stock equal to a recomputation from the events stored.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from aiokafka.partitioner import DefaultPartitioner

from caves_faust.events.letters import MAX_PAYLOAD_BYTES
from tests.corpus import INVALID_CASES, Case, cases, expected_stock, stock_of, valid_events
from tests.harness import Pipeline, Worker, wait_until

Coordinate = tuple[int, int]  # (partition, offset) on the sales topic


def metric(worker: Worker, series: str) -> float | None:
    """The sum of the values of `series` on the worker's /metrics (a name, or a name with its labels: one series;
    0.0 when it has none yet), or None while /metrics does not answer."""
    status, text = worker.get("/metrics")
    if status != 200:
        return None
    return sum(float(v) for v in re.findall(rf"^{re.escape(series)}(?:{{[^}}]*}})? (\S+)$", text, re.M))


@dataclass
class Sent:
    """Every case produced to the sales topic, by coordinate."""

    cases: dict[Coordinate, Case] = field(default_factory=dict)

    @property
    def payloads(self) -> dict[Coordinate, bytes]:
        return {coordinate: case.payload for coordinate, case in self.cases.items()}

    def record(self, produced: list[Case], coordinates: list[Coordinate]) -> None:
        self.cases.update(zip(coordinates, produced, strict=True))

    def produce(self, pipeline: Pipeline, produced: list[Case], keys: list[bytes | None] | None = None) -> None:
        self.record(produced, pipeline.produce([case.payload for case in produced], keys))

    def split(self) -> tuple[dict[Coordinate, dict], dict[Coordinate, bytes]]:
        """(events expected as rows, as JSON objects; payloads expected as dead letters), by coordinate."""
        valid = {c: json.loads(case.payload) for c, case in self.cases.items() if case.error_type is None}
        invalid = {c: case.payload for c, case in self.cases.items() if case.error_type is not None}
        return valid, invalid


# Where the events that make an idle group commit start in the corpus: far from any test's own.
NUDGE_START = 900_000
NUDGE_SECONDS = 15


def commit_everything(pipeline: Pipeline, sent: Sent, timeout: float = 120) -> None:
    """Wait until the group has committed every offset `sent` put on the sales topic. After a rebalance Faust
    commits a partition again only once it acknowledges a new event of it, so a partition idle since then trails
    what is stored (harmless: what is above the committed offset is skipped as replays): each such partition is
    given one more valid event, recorded in `sent`, every NUDGE_SECONDS until it is committed."""
    deadline = time.monotonic() + timeout
    nudged = 0
    while True:
        try:
            wait_until(lambda: pipeline.lag() == 0, NUDGE_SECONDS, "the group to commit every offset")
            return
        except AssertionError:
            pass
        ends = {p: max(o for q, o in sent.cases if q == p) + 1 for p, _ in sent.cases}
        committed = pipeline.committed()
        behind = sorted(p for p, end in ends.items() if committed.get(p, 0) < end)
        assert time.monotonic() < deadline, f"the group never committed partitions {behind}: {committed} < {ends}"
        print(f"commit_everything: partitions {behind} idle behind their last offset, given one more event each")
        for partition in behind:
            case = cases(valid_events(1, start=NUDGE_START + nudged))[0]
            nudged += 1
            sent.produce(pipeline, [case], [_key_of(partition, pipeline.partitions)])


def _key_of(partition: int, partitions: int) -> bytes:
    """A key the producer's default partitioner sends to `partition`."""
    every = list(range(partitions))
    return next(key for n in range(10_000) if DefaultPartitioner()(key := f"nudge-{n}".encode(), every, every)
                == partition)


def mixed_payloads(count: int, start: int = 0, invalid_every: int = 50) -> list[Case]:
    """`count` valid events with one invalid payload of every kind in turn after each `invalid_every`."""
    mixed: list[Case] = []
    for n, valid in enumerate(cases(valid_events(count, start=start))):
        mixed.append(valid)
        if (n + 1) % invalid_every == 0:
            mixed.append(INVALID_CASES[(start + n) // invalid_every % len(INVALID_CASES)])
    return mixed


class BackgroundProducer:
    """Produces `payloads` in chunks at a steady pace while the test breaks things (until `stop()`)."""

    def __init__(self, pipeline: Pipeline, payloads: list[Case], sent: Sent, chunk: int = 100, pause: float = 0.1):
        self.pipeline, self.payloads, self.sent, self.chunk, self.pause = pipeline, payloads, sent, chunk, pause
        self.error: BaseException | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for start in range(0, len(self.payloads), self.chunk):
                if self.stopping.is_set():
                    return
                self.sent.produce(self.pipeline, self.payloads[start:start + self.chunk])
                time.sleep(self.pause)
        except BaseException as exc:  # reported by join()
            self.error = exc

    def stop(self) -> Sent:
        self.stopping.set()
        return self.join()

    def join(self) -> Sent:
        self.thread.join(120)
        assert not self.thread.is_alive() and self.error is None, self.error
        return self.sent


def stock_served(worker: Worker) -> dict[str, int] | None:
    """product id -> stock as `/stock/` serves it, or None while the worker cannot answer (recovering)."""
    status, body = worker.get("/stock/")
    return stock_of(body) if status == 200 else None


def letter_payload(letter: dict) -> bytes:
    text = letter["payload"] or ""
    return text.encode("utf-8") if letter["payload_encoding"] == "utf-8" else base64.b64decode(text)


@dataclass(frozen=True)
class Delivered:
    """What the pipeline delivered for a test, for its report line."""

    rows: int
    letters: int
    replays_skipped: int

    def __str__(self) -> str:
        return f"{self.rows} rows and {self.letters} dead letters exactly once, {self.replays_skipped} replays skipped"


def replays_skipped(workers: Iterable[Worker]) -> int:
    return sum(int(n) for w in workers for n in re.findall(r"skipped_replays=(\d+)", w.log_text()))


def assert_exactly_once(pipeline: Pipeline, sent: Sent, worker: Worker, timeout: float = 120,
                        refused_by_snowflake: bool = False) -> Delivered:
    """Wait until every message sent is processed and committed, then check that each is in exactly one place:
    valid events in RAW_EVENTS_STREAM with their content as sent, invalid ones in the DLQ with their payload and
    the error type their case expects; and that the stock served equals the recomputation from the rows. With
    `refused_by_snowflake` (inputs whose fate in the warehouse the corpus cannot tell), a valid event may be in
    the DLQ instead, as `snowflake_rejected`."""
    valid, invalid = sent.split()

    def caught_up() -> bool:
        # Not the group's lag: after a rebalance Faust commits again only once a new event is acked, so with
        # no traffic left the committed offset may trail what is stored (harmless: replays are skipped).
        return pipeline.row_count() + len(_letters(pipeline)) >= len(sent.payloads)

    try:
        wait_until(caught_up, timeout, f"{len(valid)} rows and {len(invalid)} dead letters")
    except AssertionError:
        for running in pipeline.started_workers:  # type: ignore[attr-defined]
            running.dump_tasks()  # where a stalled worker waits, in its log
        raise
    finally:  # on a timeout, the checks below say what is missing
        rows = pipeline.rows()
        letters = _letters(pipeline)
        stored = Counter((m["partition"], m["offset"]) for m, _ in rows)
        lettered = Counter((letter["partition"], letter["offset"]) for letter in letters)
        assert not (doubled := {c: n for c, n in stored.items() if n > 1}), f"events doubled: {doubled}"
        assert not (both := set(stored) & set(lettered)), f"events both stored and dead-lettered: {both}"
        lost = set(sent.payloads) - set(stored) - set(lettered)
        assert not lost, f"{len(lost)} events neither stored nor dead-lettered: {sorted(lost)[:20]}"
        assert set(stored) <= set(valid), f"rows of invalid events: {sorted(set(stored) - set(valid))[:20]}"
        for metadata, content in rows:
            assert content == valid[(metadata["partition"], metadata["offset"])], metadata
        for letter in letters:
            original = sent.payloads[(letter["partition"], letter["offset"])]
            assert letter["error_type"] and letter["error_message"], letter
            kept = letter_payload(letter)
            assert kept == original or letter["payload_truncated"] and kept and original.startswith(kept), letter
            assert letter["payload_bytes"] == len(original)
            assert len(json.dumps(letter, ensure_ascii=False).encode()) < 2 * MAX_PAYLOAD_BYTES
        refused = {c for c in lettered if c in valid}
        assert not refused or refused_by_snowflake, f"valid events dead-lettered: {sorted(refused)[:20]}"
        expected_types = {c: case.error_type for c, case in sent.cases.items()}
        expected_types.update(dict.fromkeys(refused, "snowflake_rejected"))
        misjudged = [(letter["error_type"], wanted, letter) for letter in letters
                     if letter["error_type"] != (wanted := expected_types[(letter["partition"], letter["offset"])])]
        assert not misjudged, f"dead letters of an unexpected error type (got, expected, letter): {misjudged[:5]}"
    # Each dead letter once in DLQ_EVENTS too (streaming mode commits it a moment after the topic has it).
    _until_same(lambda: Counter(pipeline.query(
        "SELECT SOURCE_PARTITION, SOURCE_OFFSET, ERROR_TYPE FROM DLQ_EVENTS WHERE SOURCE_TOPIC = %s",
        (pipeline.sales_topic,))), Counter((letter["partition"], letter["offset"], letter["error_type"])
                                           for letter in letters),
        30, "DLQ_EVENTS against the DLQ topic ((partition, offset, error type): (rows, letters))")
    # The stock moves by exactly the events stored.
    _until_same(lambda: stock_served(worker),
                expected_stock(event for c, event in valid.items() if c not in refused),
                60, "the stock served against the recomputation (product: (served, expected))")
    return Delivered(len(rows), len(letters), replays_skipped(pipeline.started_workers))  # type: ignore[attr-defined]


def _until_same(read: Callable[[], Mapping | None], expected: Mapping, timeout: float, what: str) -> None:
    """Wait until `read()` equals `expected`; on a timeout, fail naming the keys that differ."""
    seen: Mapping | None = None

    def same() -> bool:
        nonlocal seen
        seen = read()
        return seen == expected

    try:
        wait_until(same, timeout, what)
    except AssertionError:
        shown = seen or {}  # None: the worker never answered; {}: nothing there
        wrong = {k: (shown.get(k), expected.get(k)) for k in expected.keys() | shown.keys()
                 if shown.get(k) != expected.get(k)}
        raise AssertionError(f"{what} differ: {dict(list(wrong.items())[:20])}") from None


def _letters(pipeline: Pipeline) -> list[dict]:
    """The pipeline's dead letters, each once: a letter the DLQ topic holds twice (a broker that wrote it and went
    down before answering, so the producer sent it again) counts once, as every reader counts it; its copies must be
    the same letter."""
    first: dict[tuple[int, int], dict] = {}
    for letter in pipeline.dead_letters():
        if letter["topic"] == pipeline.sales_topic:
            copy = first.setdefault((letter["partition"], letter["offset"]), letter)
            assert copy == letter, f"two different letters for one event: {copy} / {letter}"
    return list(first.values())


def partition_offsets_delivered(pipeline: Pipeline) -> dict[int, set[int]]:
    """partition -> offsets found in Snowflake or in the DLQ."""
    found: dict[int, set[int]] = {}
    coordinates = [(m["partition"], m["offset"]) for m, _ in pipeline.rows()]
    coordinates += [(letter["partition"], letter["offset"]) for letter in _letters(pipeline)]
    for partition, offset in coordinates:
        found.setdefault(partition, set()).add(offset)
    return found
