"""Test doubles shared by the suite: Snowflake, Snowpipe Streaming and the DLQ topic in memory, and fake Faust events.

- `FakeSnowflake`: the account's tables (RAW_EVENTS_STREAM, SINK_OFFSETS, DLQ_EVENTS), what every fake below writes
  to and reads from, so that a test asserts what a user of the warehouse would see.
- `FakeWarehouse`: `snowflake.connection.Warehouse` on those tables, hence also the `RowWriter` of
  `sink.warehouse.WarehouseSink`. `write` is one transaction: the rows, letters, replayed marks and high-water moves
  all applied, or an error raised and nothing applied. Scripted: outages (`fail`), commits whose answer is lost
  (`lose_commit_answer`), rows refused for their content (those holding `REFUSED`: the real `rejected` bisects them
  through `accepts`), another writer's transaction landing first (`another_writer`: ours is then `FencedOut`, as the
  conditional advance of the marks makes it). `cursor` answers STORED_COPIES, so `sink.replays.stored_copies` runs
  as it is.
- `FakeStreamingClient`: `snowflake.streaming_client.StreamingClient` on those tables, so the real
  `sink.channels.StreamingWriter` and `sink.streaming.StreamingSink` run on it: channels with client sequencers and
  offset tokens; appends committed after `commit_after_polls` status polls (0: at once); a reopened channel fences its
  previous client out and discards its uncommitted appends; rows holding the client's `refuse` marker are counted in
  `rows_error_count` and not stored; scripted outages raise `StreamingUnavailable`; `take_over` is another writer;
  `settle` commits what is still pending (assert on the tables after it: a duplicate append shows only then).
- `FakeDeadLetters`: `dlq.writer.DeadLetters` on an in-memory DLQ topic, sending only the letters not there yet.
- `sales_event`, `order`, `classified`: fake Faust events, as the intake reads them.

No network, no sleeps: every fake answers at once; the only waits are the sinks' own backoffs and polls.
"""

from __future__ import annotations

import json
from collections import Counter
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Sequence

from aiokafka.errors import KafkaConnectionError
from faust.types import EventT
from prometheus_client import REGISTRY
from snowflake.connector.cursor import SnowflakeCursor, SnowflakeCursorBase
from snowflake.connector.errors import OperationalError, ProgrammingError

from caves_faust.dlq.writer import DeadLetters
from caves_faust.events.batch import Classified
from caves_faust.events.letters import DeadLetter
from caves_faust.events.origin import Origin
from caves_faust.intake.classify import classify
from caves_faust.sink.retry import RetryPolicy
from caves_faust.sink.rows import STREAMED_COLUMNS
from caves_faust.snowflake.connection import Batch, StoredMarks, Warehouse
from caves_faust.snowflake.errors import FencedOut
from caves_faust.snowflake.streaming_client import (
    STALE_SEQUENCER,
    ChannelFenced,
    ChannelStatus,
    OpenChannel,
    StreamingClient,
    StreamingRefused,
    StreamingUnavailable,
)
from caves_faust.snowflake.tables import STORED_COPIES
from tests import corpus

TOPIC = "sales_events"
DLQ_TOPIC = "sales_events_dlq"
RAW_EVENTS = "RAW_EVENTS_STREAM"
DLQ_EVENTS = "DLQ_EVENTS"
# A row holding this text is refused by Snowflake for its content (put it in an event's `product_name`).
REFUSED = "REFUSED-BY-SNOWFLAKE"
# An event validation refuses: a dead letter of the intake (`wrong_type`).
INVALID = b'{"event_type": "ORDER_CREATED", "order_line_id": "L-X", "customer_id": 1, "product_id": 1, "quantity": 6.5}'


def outage() -> OperationalError:
    """What the connector raises when Snowflake does not answer."""
    return OperationalError(msg="Failed to execute request: Max retries exceeded (fake outage)", errno=250003)


def content_error(message: str = f"Numeric value '{REFUSED}' is not recognized") -> ProgrammingError:
    """What the connector raises when Snowflake refuses a statement for the rows it holds (not an 08 sqlstate)."""
    return ProgrammingError(msg=message, errno=100038, sqlstate="22018")


# --- Faust events ---

def order(product_id: int = 1015, quantity: int = 1, name: str = "Chablis 2019", line: str = "") -> bytes:
    """A valid ORDER_CREATED payload (`tests.corpus.order`); `name=REFUSED` makes a row Snowflake refuses."""
    return json.dumps(corpus.order(0, product_id, quantity, order_line_id=line or f"L-{product_id}-{quantity}",
                                   customer_id=7, product_name=name)).encode()


def sales_event(partition: int, offset: int, value: bytes, headers: Iterable[tuple[str, bytes]] | None = None,
                key: bytes | None = None) -> EventT:
    """An event as the intake's stream hands it over (`tests.corpus.fake_event`), its timestamp after its offset."""
    return corpus.fake_event(partition, offset, value, key, list(headers or []), timestamp=1_800_000_000.0 + offset)


# The sinks' retry policy in these tests: outages are scripted, so no real wait between attempts.
RETRY = RetryPolicy(max_seconds=0.01, first_seconds=0.001)


def orders(partition: int, offsets: range) -> list[EventT]:
    """A valid order at each of these offsets of the partition, one product per offset."""
    return [sales_event(partition, o, order(product_id=1000 + o, quantity=1 + o % 3)) for o in offsets]


def retries(reason: str) -> float:
    """The sink's Snowflake retries so far, for this reason (`snowflake_retries_total`)."""
    return REGISTRY.get_sample_value("snowflake_retries_total", {"reason": reason}) or 0.0


def classified(events: Iterable[EventT], topic_id: str | None = None) -> Classified:
    """A batch as the intake hands it to the sink (read from the life `topic_id` of the sales topic)."""
    return classify(list(events), topic_id)


# --- the account's tables ---

@dataclass
class Row:
    """A RAW_EVENTS_STREAM row."""

    metadata: dict[str, Any]  # EVENT_METADATA
    content: dict[str, Any]  # EVENT_CONTENT

    @property
    def partition(self) -> int:
        return int(self.metadata["partition"])

    @property
    def offset(self) -> int:
        return int(self.metadata["offset"])


@dataclass
class LetterRow:
    """A DLQ_EVENTS row: the letter's fields as the DLQ topic carries them, and whether it was replayed."""

    fields: dict[str, Any]
    replayed: bool = False

    @property
    def error_type(self) -> str:
        return str(self.fields["error_type"])

    @property
    def topic_id(self) -> str | None:
        return self.fields.get("topic_id")

    @property
    def source(self) -> tuple[str, int, int]:
        return str(self.fields["topic"]), int(self.fields["partition"]), int(self.fields["offset"])


class FakeSnowflake:
    """The tables, in memory. The fakes below apply whole statements to them, each at once."""

    def __init__(self) -> None:
        self.raw_events: list[Row] = []
        self.dlq_events: list[LetterRow] = []
        # SINK_OFFSETS: (topic, topic id, partition) -> high-water (MAX)
        self.marks: dict[tuple[str, str | None, int], int] = {}

    # what a test reads
    def offsets(self, partition: int, topic: str = TOPIC) -> list[int]:
        """The offsets of the partition's rows, in the order stored, duplicates included."""
        return [r.offset for r in self.raw_events if r.metadata["topic"] == topic and r.partition == partition]

    def letters(self, error_type: str | None = None) -> list[LetterRow]:
        return [r for r in self.dlq_events if error_type is None or r.error_type == error_type]

    # what the statements do
    def insert_warehouse_rows(self, rows: Iterable[str]) -> None:
        """INSERT_BATCH: rows as `sink.rows.warehouse_row` formats them."""
        for text in rows:
            row = json.loads(text)
            self.raw_events.append(Row(row["m"], row["c"]))

    def insert_stream_rows(self, rows: Iterable[dict[str, Any]]) -> None:
        """Rows as `sink.rows.stream_row` formats them, keyed by column name."""
        self.raw_events += [Row(r["EVENT_METADATA"], r["EVENT_CONTENT"]) for r in rows]

    def insert_letters(self, letters: Iterable[str], missing_only: bool = False) -> None:
        """INSERT_LETTERS (INSERT_MISSING_LETTERS with `missing_only`): letters as `sink.rows.letter_rows` has them."""
        for text in letters:
            fields = json.loads(text)
            row = LetterRow(fields)
            if not missing_only or all(r.source != row.source for r in self.dlq_events):
                self.dlq_events.append(row)

    def insert_stream_letters(self, rows: Iterable[dict[str, Any]]) -> None:
        """Letters as `sink.rows.letter_stream_row` formats them, keyed by column name."""
        for row in rows:
            self.dlq_events.append(LetterRow({name: row.get(column) for column, name in STREAMED_COLUMNS.items()}))

    def mark_replayed(self, replayed: str) -> None:
        """MARK_REPLAYED: `replayed` as `sink.rows.replayed_sources` has it."""
        for source in json.loads(replayed) if replayed else []:
            for row in self.dlq_events:
                if row.source == (source["t"], source["p"], source["o"]):
                    row.replayed = True

    def stored_copies(self, topic: str, low: int, high: int) -> list[tuple[str | None, int, int, int, int]]:
        """STORED_COPIES: (letter's DLQ topic id, letter partition, letter offset, partition, offset) of the rows
        replaying letters."""
        return [(origin.get("topic_id"), int(origin["partition"]), int(origin["offset"]), row.partition, row.offset)
                for row in self.raw_events
                if (origin := row.metadata.get("replayed_from")) and origin["topic"] == topic
                and low <= int(origin["offset"]) <= high]

    def stored_offsets(self, topic: str, topic_id: str | None, partition: int, low: int, high: int) -> set[int]:
        """READ_STORED_OFFSETS."""
        return {r.offset for r in self.raw_events if r.metadata["topic"] == topic and r.partition == partition
                and r.metadata.get("topic_id") == topic_id and low <= r.offset <= high}

    def stored_marks(self, topic: str, topic_id: str | None, partition: int) -> StoredMarks:
        """READ_STORED_MARKS (rows and letters of no known life count as this one's)."""
        letters = [r.source[2] for r in self.dlq_events
                   if r.source[:2] == (topic, partition) and r.topic_id in (None, topic_id)]
        rows = [r.offset for r in self.raw_events if r.metadata["topic"] == topic and r.partition == partition
                and r.metadata.get("topic_id", topic_id) == topic_id]
        return StoredMarks(max(rows, default=None), max(letters, default=None))


# --- the warehouse connection (and RowWriter) ---

class _Cursor:
    """Answers the one query the sinks send through `Warehouse.cursor`: STORED_COPIES (`sink.replays`)."""

    def __init__(self, warehouse: FakeWarehouse):
        self.warehouse = warehouse
        self._result: list[tuple[Any, ...]] = []

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> None:
        if statement != STORED_COPIES:
            raise AssertionError(f"the fake warehouse's cursor does not know {statement[:60]!r}")
        self.warehouse._enter("stored_copies")
        self._result = list(self.warehouse.snowflake.stored_copies(*params))

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._result


class FakeWarehouse(Warehouse):
    """One connection to the fake account: `Warehouse`'s calls, failing as scripted. `calls` counts every call
    (failed ones included), `transactions` holds the batches `write` committed, `filed` the `file_letters` calls that
    succeeded. Like the real one it is called in threads, one call at a time."""

    def __init__(self, snowflake: FakeSnowflake | None = None, refuse: str | None = REFUSED):
        self.snowflake = snowflake if snowflake is not None else FakeSnowflake()
        self.refuse = refuse  # rows holding this are refused for their content (None: none is)
        self.calls: Counter[str] = Counter()
        self.transactions: list[Batch] = []
        self.filed: list[tuple[list[str], str]] = []
        self._failures: dict[str, list[BaseException]] = {}
        self._lost_answers = 0
        self._others: list[tuple[str, str | None, Batch]] = []

    # scripts
    def fail(self, call: str, times: int = 1, error: BaseException | None = None) -> None:
        """The next `times` calls of `call` (a method name, or "stored_copies" for that query) raise `error`, an
        outage by default, and do nothing."""
        self._failures.setdefault(call, []).extend(error if error is not None else outage() for _ in range(times))

    def lose_commit_answer(self, times: int = 1) -> None:
        """The next `times` writes commit, then raise an outage: the COMMIT's answer never came back."""
        self._lost_answers += times

    def another_writer(self, topic: str, batch: Batch, topic_id: str | None = None) -> None:
        """Another writer's transaction commits just before our next `write` (a zombie, or the next owner)."""
        self._others.append((topic, topic_id, batch))

    # Warehouse's calls
    def connection(self) -> Any:
        raise AssertionError("the fake warehouse opens no connection")

    def cursor(self, kind: type[SnowflakeCursorBase] = SnowflakeCursor) -> AbstractContextManager[Any]:
        @contextmanager
        def opened() -> Iterator[_Cursor]:
            yield _Cursor(self)

        return opened()

    def close(self) -> None:
        self.calls["close"] += 1

    def reset(self) -> None:
        self.calls["reset"] += 1

    def bootstrap(self) -> None:
        self._enter("bootstrap")

    def high_waters(self, topic: str, topic_id: str | None) -> dict[tuple[str | None, int], int]:
        self._enter("high_waters")
        return {(life, p): mark for (t, life, p), mark in self.snowflake.marks.items() if t == topic}

    def stored_offsets(self, topic: str, topic_id: str | None, partition: int, low: int, high: int) -> set[int]:
        self._enter("stored_offsets")
        return self.snowflake.stored_offsets(topic, topic_id, partition, low, high)

    def stored_marks(self, topic: str, topic_id: str | None, partition: int) -> StoredMarks:
        self._enter("stored_marks")
        return self.snowflake.stored_marks(topic, topic_id, partition)

    def write(self, topic: str, topic_id: str | None, batch: Batch) -> None:
        self._enter("write")
        for other_topic, other_id, other in self._others:
            self._commit(other_topic, other_id, other)
        self._others.clear()
        self._commit(topic, topic_id, batch)
        self.transactions.append(batch)
        if self._lost_answers:
            self._lost_answers -= 1
            raise outage()

    def file_letters(self, letters: list[str], replayed: str) -> None:
        self._enter("file_letters")
        self.snowflake.insert_letters(letters, missing_only=True)
        self.snowflake.mark_replayed(replayed)
        self.filed.append((list(letters), replayed))

    def abort_stale_transactions(self, held_seconds: float) -> list[int]:
        self._enter("abort_stale_transactions")
        return []

    def accepts(self, rows: list[str]) -> bool:
        self._enter("accepts")
        return not self._refused(rows)

    # `rejected` is Warehouse's own: the bisection through `accepts`.

    def _enter(self, call: str) -> None:
        self.calls[call] += 1
        pending = self._failures.get(call)
        if pending:
            raise pending.pop(0)

    def _refused(self, rows: Iterable[str]) -> bool:
        return self.refuse is not None and any(self.refuse in row for row in rows)

    def _commit(self, topic: str, topic_id: str | None, batch: Batch) -> None:
        """One transaction, as `Warehouse.write` runs it: all of it, or an error and nothing."""
        if self._refused(batch.rows):
            raise content_error()
        marks = self.snowflake.marks
        moved = [p for p, (old, _) in batch.high_waters.items()
                 if old is not None and marks.get((topic, topic_id, p)) != old]
        if moved:  # ADVANCE_HIGH_WATER is conditional on the mark read
            raise FencedOut(f"{topic}: high-water marks moved under us (partitions {sorted(moved)})")
        for p, (_, new) in batch.high_waters.items():  # INSERT_HIGH_WATER is not: READ_HIGH_WATERS takes the MAX
            marks[(topic, topic_id, p)] = max(new, marks.get((topic, topic_id, p), new))
        self.snowflake.insert_letters(batch.letters)
        self.snowflake.mark_replayed(batch.replayed)
        self.snowflake.insert_warehouse_rows(batch.rows)


# --- Snowpipe Streaming ---

@dataclass
class _Append:
    sequencer: int  # the client sequencer it was appended under
    rows: list[dict[str, Any]]
    errors: list[str]  # the messages of the rows refused
    end: str  # its end offset token
    polls_left: int


@dataclass
class FakeChannel:
    name: str
    sequencer: int = 0  # the client sequencer: bumped by each open
    row_sequencer: int = 0
    token: str | None = None  # the committed offset token
    rows_error_count: int = 0
    last_error_message: str | None = None
    last_error_offset_upper_bound: str | None = None
    pending: list[_Append] = field(default_factory=list)  # acknowledged, not committed yet

    def continuation_token(self) -> str:
        return f"{self.sequencer}_{self.row_sequencer}"

    def status(self) -> ChannelStatus:
        return ChannelStatus(self.name, self.token, self.rows_error_count, self.last_error_message,
                             self.last_error_offset_upper_bound)


class FakeStreamingClient(StreamingClient):
    """One pipe's channels, committing into `table` (RAW_EVENTS or DLQ_EVENTS) of the fake account.

    The service's clock is the status polls: each `statuses` call, failed or not, is one tick, and an append commits
    at the `commit_after_polls`-th tick after it (0: when appended), in order, channel by channel."""

    def __init__(self, snowflake: FakeSnowflake, table: str = RAW_EVENTS, commit_after_polls: int = 1,
                 refuse: str | None = None):
        self.snowflake = snowflake
        self.table = table
        self.commit_after_polls = commit_after_polls
        self.refuse = refuse  # rows holding this are counted as errors and not stored (None: none is)
        self.channels: dict[str, FakeChannel] = {}
        self.most_pending = 0  # the most appends a channel held uncommitted at once (batches in flight)
        self.calls: Counter[str] = Counter()
        self._failures: Counter[str] = Counter()

    # scripts
    def fail(self, call: str, times: int = 1) -> None:
        """The next `times` calls of `call` ("open", "append", "statuses") raise StreamingUnavailable. An open or an
        append that fails does nothing; a status poll that fails still ticks (the service commits on its own: the
        answer is what is lost)."""
        self._failures[call] += times

    def take_over(self, name: str, lines: Sequence[str] = (), end: int | None = None) -> None:
        """Another writer opens the channel (from now on our appends to it are refused: ChannelFenced, and what we
        appended uncommitted is discarded), then appends `lines` ending at offset token `end`, committed at once."""
        channel = self._open(name)
        if lines:
            assert end is not None, "the other writer's rows need their end offset token"
            self._queue(channel, [json.loads(line) for line in lines], str(end), polls=0)

    def settle(self) -> None:
        """The service commits every append still pending (what it would do later, whoever watches): rows appended
        twice show in the table only then, if the second append's range was covered by the first's token."""
        for channel in self.channels.values():
            for pending in channel.pending:
                pending.polls_left = 0
            self._commit_due(channel)

    # StreamingClient's calls
    async def open(self, name: str) -> tuple[OpenChannel, ChannelStatus]:
        self._enter("open")
        channel = self._open(name)
        return OpenChannel(name, channel.continuation_token()), channel.status()

    async def append(self, channel: OpenChannel, ndjson: bytes, start_offset_token: str, end_offset_token: str
                     ) -> None:
        self._enter("append")
        state = self.channels.get(channel.name)
        if state is None:
            raise StreamingRefused(f"channel {channel.name} does not exist or is not open")
        if int(channel.continuation_token.split("_")[0]) != state.sequencer:
            raise ChannelFenced(f"POST {channel.name}/rows: HTTP 400 {STALE_SEQUENCER}")
        self._queue(state, [json.loads(line) for line in ndjson.decode().splitlines()], end_offset_token,
                    polls=self.commit_after_polls)
        self.most_pending = max(self.most_pending, len(state.pending))
        channel.continuation_token = state.continuation_token()

    async def statuses(self, names: list[str]) -> dict[str, ChannelStatus]:
        self.calls["statuses"] += 1
        for channel in self.channels.values():
            for pending in channel.pending:
                pending.polls_left -= 1
            self._commit_due(channel)
        if self._failures["statuses"]:
            self._failures["statuses"] -= 1
            raise StreamingUnavailable("POST :bulk-channel-status: HTTP 503 (fake outage)")
        return {name: self.channels[name].status() for name in names if name in self.channels}

    async def drop(self, name: str) -> None:
        self._enter("drop")
        self.channels.pop(name, None)

    async def close(self) -> None:
        self.calls["close"] += 1

    def _enter(self, call: str) -> None:
        self.calls[call] += 1
        if self._failures[call]:
            self._failures[call] -= 1
            raise StreamingUnavailable(f"{call}: HTTP 503 (fake outage)")

    def _open(self, name: str) -> FakeChannel:
        channel = self.channels.get(name)
        if channel is None:
            channel = self.channels[name] = FakeChannel(name)
        else:
            channel.sequencer += 1  # the previous client's continuation token is stale from now on
        channel.pending.clear()  # uncommitted appends: discarded
        return channel

    def _queue(self, channel: FakeChannel, rows: list[dict[str, Any]], end: str, polls: int) -> None:
        refused = [r for r in rows if self.refuse is not None and self.refuse in json.dumps(r)]
        errors = [f"Numeric value '{self.refuse}' is not recognized (row {r.get('EVENT_METADATA')})" for r in refused]
        channel.row_sequencer += 1
        channel.pending.append(_Append(channel.sequencer, [r for r in rows if r not in refused], errors, end, polls))
        self._commit_due(channel)

    def _commit_due(self, channel: FakeChannel) -> None:
        while channel.pending and channel.pending[0].polls_left <= 0:
            done = channel.pending.pop(0)
            if self.table == RAW_EVENTS:
                self.snowflake.insert_stream_rows(done.rows)
            else:
                self.snowflake.insert_stream_letters(done.rows)
            if done.errors:
                channel.rows_error_count += len(done.errors)
                channel.last_error_message = done.errors[-1]
                channel.last_error_offset_upper_bound = done.end
            channel.token = done.end


# --- the DLQ topic ---

class FakeDeadLetters(DeadLetters):
    """`DeadLetters` on an in-memory DLQ topic (`messages`, shared by the instances given the same list, as workers
    share the topic): `send` writes the letters not at or below the mark given and not in the topic yet, and returns
    how many. `sends` holds each call's letters and marks, `forgotten` each `forget`'s partitions."""

    def __init__(self, messages: list[DeadLetter] | None = None, dlq_partitions: int = 1):
        self.messages = messages if messages is not None else []
        self.dlq_partitions = dlq_partitions
        self.sends: list[tuple[list[DeadLetter], dict[int, int]]] = []
        self.forgotten: list[set[int]] = []
        self._failures = 0

    def fail(self, times: int = 1) -> None:
        """The next `times` sends raise a Kafka error and send nothing."""
        self._failures += times

    def forget(self, partitions: Iterable[int]) -> None:
        self.forgotten.append(set(partitions))

    async def send(self, letters: list[DeadLetter], stored: Mapping[int, int]) -> int:
        self.sends.append((list(letters), dict(stored)))
        if self._failures:
            self._failures -= 1
            raise KafkaConnectionError("fake DLQ outage")
        there = {(m.partition, m.offset) for m in self.messages}
        fresh = [d for d in letters if d.offset > stored.get(d.partition, -1) and (d.partition, d.offset) not in there]
        self.messages += fresh
        return len(fresh)

    def sent(self, error_type: str | None = None) -> list[tuple[int, int]]:
        """(partition, offset) of the letters in the topic, in order."""
        return [(m.partition, m.offset) for m in self.messages
                if error_type is None or m.error.error_type == error_type]

    def origin(self, partition: int, offset: int) -> Origin:
        """The letter written for this source event, as `dlq replay` names it in its replay's headers."""
        dlq_partition = partition % self.dlq_partitions
        in_partition = [m for m in self.messages if m.partition % self.dlq_partitions == dlq_partition]
        index = next(i for i, m in enumerate(in_partition) if (m.partition, m.offset) == (partition, offset))
        letter = in_partition[index]
        return Origin(DLQ_TOPIC, dlq_partition, index, source=(letter.event.message.topic, partition, offset))
