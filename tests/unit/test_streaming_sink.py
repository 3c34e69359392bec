"""The sink in streaming mode against a fake Snowpipe Streaming service (tests/fakes.py): the real `StreamingSink`
and `StreamingWriter` on fake `StreamingClient`s (one per pipe) and a fake warehouse, over one in-memory account.
What `store` leaves in the tables, in the DLQ topic and in what it returns, for a refused row, an outage, a fenced
partition, a replayed letter and a batch delivered again."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import pytest
from faust.types import EventT

from caves_faust.sink import channels
from caves_faust.sink.channels import StreamingWriter
from caves_faust.sink.fencing import Fencing
from caves_faust.sink.rows import stream_row
from caves_faust.sink.streaming import StreamingSink
from tests.fakes import (
    DLQ_EVENTS,
    DLQ_TOPIC,
    INVALID,
    REFUSED,
    RETRY,
    TOPIC,
    FakeDeadLetters,
    FakeSnowflake,
    FakeStreamingClient,
    FakeWarehouse,
    classified,
    order,
    orders,
    retries,
    sales_event,
)

# A sink that never returns fails its test: each takes milliseconds.
pytestmark = pytest.mark.timeout(10)


@pytest.fixture(autouse=True)
def no_poll_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake service's clock is its status polls: no need to wait between them."""
    monkeypatch.setattr(channels, "STATUS_POLL_SECONDS", 0)


@dataclass
class Account:
    """One fake account: its tables, the two pipes' services, the warehouse connection, the DLQ topic, and the
    sales partitions the consumer holds."""

    snowflake: FakeSnowflake = field(default_factory=FakeSnowflake)
    owned: set[int] = field(default_factory=lambda: {0, 1, 2})

    def __post_init__(self) -> None:
        self.rows = FakeStreamingClient(self.snowflake, refuse=REFUSED)
        self.letters = FakeStreamingClient(self.snowflake, table=DLQ_EVENTS)
        self.warehouse = FakeWarehouse(self.snowflake)
        self.dlq = FakeDeadLetters()

    def tables(self) -> FakeSnowflake:
        """The tables once the service committed all it was given."""
        self.rows.settle()
        self.letters.settle()
        return self.snowflake

    def sink(self, fence_wait_seconds: float = 30.0, dlq: FakeDeadLetters | None = None) -> StreamingSink:
        """A worker's sink (a new one: as after a crash or a restart)."""
        return StreamingSink(
            StreamingWriter(self.rows, f"app_{TOPIC}", 5), StreamingWriter(self.letters, f"app_{TOPIC}", 5),
            self.warehouse, dlq or self.dlq, TOPIC, RETRY, stopping=lambda: False,
            kafka_committed=lambda partition: None, what_to_check="(the fake account)",
            fencing=Fencing(owned=lambda: set(self.owned), rebalancing=lambda: False, wait_seconds=fence_wait_seconds))


@pytest.fixture
def account() -> Account:
    return Account()


async def test_a_row_snowflake_refuses_is_dead_lettered_and_the_others_stored(account: Account) -> None:
    events = [*orders(0, range(0, 1)), sales_event(0, 1, order(name=REFUSED)), *orders(0, range(2, 3)),
              sales_event(0, 3, INVALID)]

    outcome = await account.sink().store(classified(events))

    assert account.tables().offsets(0) == [0, 2]
    assert (outcome.rows, outcome.skipped, outcome.rejected) == (2, 0, 1)
    assert [a.offset for a in outcome.stored] == [0, 2]  # the refused event moves no stock
    assert account.dlq.sent("snowflake_rejected") == [(0, 1)] and account.dlq.sent("wrong_type") == [(0, 3)]
    [(filed, replayed)] = account.warehouse.filed  # the refused row's letter, in DLQ_EVENTS through the warehouse
    assert [(letter["offset"], letter["error_type"]) for letter in map(json.loads, filed)] == [
        (1, "snowflake_rejected")]
    assert replayed == ""
    assert sorted((r.source[2], r.error_type) for r in account.tables().letters()) == [
        (1, "snowflake_rejected"), (3, "wrong_type")]  # the invalid one through the DLQ pipe's channel


async def test_rows_refused_in_a_commit_its_writer_did_not_live_to_see_are_dead_lettered_by_the_next(
        account: Account) -> None:
    events = [*orders(0, range(0, 1)), sales_event(0, 1, order(name=REFUSED)), *orders(0, range(2, 3))]
    sink = account.sink()
    # A writer appended the batch, the service committed it (refusing offset 1), and the writer died.
    account.rows.take_over(sink.rows.channel_name(0), [stream_row(a).line for a in classified(events).accepted], end=2)

    outcome = await sink.store(classified(events))  # Kafka delivers the batch again, to a new worker

    assert account.tables().offsets(0) == [0, 2]
    assert (outcome.rows, outcome.skipped, outcome.rejected) == (0, 2, 1)
    assert [a.offset for a in outcome.stored] == [0, 2]
    assert account.dlq.sent("snowflake_rejected") == [(0, 1)]
    assert [r.source[2] for r in account.tables().letters("snowflake_rejected")] == [1]


async def test_a_channel_expired_with_its_token_resumes_after_what_its_table_holds(account: Account) -> None:
    events = [*orders(0, range(0, 3)), sales_event(0, 3, INVALID), *orders(1, range(0, 2))]
    await account.sink().store(classified(events))
    account.tables()
    for client in (account.rows, account.letters):  # 30 days unused: the channels and their tokens are gone
        client.channels.clear()

    # Kafka delivers it all again (the group's offsets were older), with new events after it.
    more = [*orders(0, range(4, 6)), sales_event(0, 6, INVALID), *orders(1, range(2, 3))]
    outcome = await account.sink().store(classified(events + more))

    assert account.tables().offsets(0) == [0, 1, 2, 4, 5] and account.tables().offsets(1) == [0, 1, 2]
    assert (outcome.rows, outcome.skipped) == (3, 5)
    assert sorted(r.source[1:] for r in account.tables().letters()) == [(0, 3), (0, 6)]  # each letter once too


@pytest.mark.parametrize("call, commit_after_polls, times, appends", [
    ("open", 1, 3, 2),
    ("append", 1, 3, 3 + 2),  # each round fails at partition 0's append
    ("statuses", 3, 3, 4 * 2),  # not committed when the poll fails: reopening discards it, it is appended again
    ("statuses", 1, 1, 2),  # committed while the worker could not see it: reopened, the token covers it
])
async def test_an_outage_is_retried_until_the_batch_is_stored_once(account: Account, call: str, commit_after_polls: int,
                                                                   times: int, appends: int) -> None:
    account.rows.commit_after_polls = commit_after_polls
    account.rows.fail(call, times)
    before = retries("outage")

    outcome = await account.sink().store(classified([*orders(0, range(3)), *orders(1, range(2))]))

    assert account.tables().offsets(0) == [0, 1, 2] and account.tables().offsets(1) == [0, 1]
    assert (outcome.rows, outcome.skipped, outcome.rejected, len(outcome.stored)) == (5, 0, 0, 5)
    assert outcome.abandoned == frozenset()
    assert retries("outage") - before == times
    assert account.warehouse.calls["reset"] == times  # the warehouse connection dropped too, after each
    assert account.rows.calls["append"] == appends


async def test_a_partition_whose_channel_another_writer_reopened_is_left_to_it(account: Account) -> None:
    sink = account.sink()
    await sink.store(classified([*orders(0, range(3)), sales_event(0, 3, INVALID), *orders(1, range(3))]))
    # Partition 0 went to another worker, which opened its channels; this worker learns of it only later.
    account.rows.take_over(sink.rows.channel_name(0))
    account.letters.take_over(sink.letters.channel_name(0))
    account.owned = {1, 2}
    before = retries("fenced")

    outcome = await sink.store(classified([*orders(0, range(4, 6)), sales_event(0, 6, INVALID),
                                           *orders(1, range(3, 5))]))

    assert outcome.abandoned == frozenset({0})
    assert [(a.partition, a.offset) for a in outcome.stored] == [(1, 3), (1, 4)]  # not partition 0's: not ours
    assert (outcome.rows, outcome.skipped) == (2, 0)
    assert account.tables().offsets(0) == [0, 1, 2] and account.tables().offsets(1) == [0, 1, 2, 3, 4]
    # Its letter is the new owner's to send and to file (its DLQ_EVENTS channel refused ours too).
    assert account.dlq.sent() == [(0, 3)] and [r.source[2] for r in account.tables().letters()] == [3]
    assert retries("fenced") - before >= 1


async def test_a_fenced_partition_still_ours_is_reopened_and_written_above_the_other_writer(account: Account) -> None:
    sink = account.sink(fence_wait_seconds=0)
    await sink.store(classified([*orders(0, range(3)), *orders(1, range(3))]))
    # A zombie reopened partition 0's channel and stored offsets 3 and 4; the partition is still ours.
    theirs = classified(orders(0, range(3, 5))).accepted
    account.rows.take_over(sink.rows.channel_name(0), [stream_row(a).line for a in theirs], end=4)

    outcome = await sink.store(classified([*orders(0, range(3, 6)), *orders(1, range(3, 6))]))

    assert outcome.abandoned == frozenset()
    assert account.tables().offsets(0) == [0, 1, 2, 3, 4, 5]  # none doubled
    assert account.tables().offsets(1) == [0, 1, 2, 3, 4, 5]
    assert (outcome.rows, outcome.skipped, len(outcome.stored)) == (4, 2, 6)
    assert account.rows.channels[sink.rows.channel_name(0)].sequencer == 2  # ours, theirs, ours again


async def test_a_replayed_letter_is_stored_once_and_only_its_stored_copy_moves_the_stock(account: Account) -> None:
    sink = account.sink()
    await sink.store(classified([*orders(0, range(1)), sales_event(0, 1, INVALID)]))
    letter = account.dlq.origin(0, 1)  # what `dlq replay` names in its replays' headers
    assert not account.tables().letters("wrong_type")[0].replayed
    fixed = order(product_id=1, quantity=6, line="L-X")

    # Replayed twice (two operators), both copies in one batch.
    outcome = await sink.store(classified([sales_event(0, 2, fixed, letter.headers()),
                                           sales_event(0, 3, fixed, letter.headers()), *orders(0, range(4, 5))]))

    assert account.tables().offsets(0) == [0, 2, 4]
    assert [a.offset for a in outcome.stored] == [2, 4] and (outcome.rows, outcome.skipped) == (2, 1)
    assert account.warehouse.filed == [([], json.dumps([{"t": TOPIC, "p": 0, "o": 1}]))]
    assert account.tables().letters("wrong_type")[0].replayed
    [copy] = [r for r in account.tables().raw_events if r.offset == 2]
    assert copy.metadata["replayed_from"] == {"topic": DLQ_TOPIC, "partition": 0, "offset": 0}

    # Replayed once more, a batch later: its copy is stored already.
    again = await sink.store(classified([sales_event(0, 5, fixed, letter.headers())]))

    assert account.tables().offsets(0) == [0, 2, 4]
    assert again.stored == [] and (again.rows, again.skipped) == (0, 1)
    assert len(account.warehouse.filed) == 1  # nothing more to mark


@pytest.mark.parametrize("after_a_crash", [False, True])
async def test_a_batch_delivered_again_is_skipped(account: Account, after_a_crash: bool) -> None:
    def batch() -> list[EventT]:  # as Kafka delivers it, each time
        return [*orders(0, range(3)), *orders(1, range(2)), sales_event(1, 2, INVALID)]

    sink = account.sink()
    first = await sink.store(classified(batch()))
    # After a crash a new worker stores it: it reopens the channels, on the same account and DLQ topic.
    again_sink = account.sink(dlq=FakeDeadLetters(account.dlq.messages)) if after_a_crash else sink
    appends = account.rows.calls["append"]

    again = await again_sink.store(classified(batch()))

    assert account.tables().offsets(0) == [0, 1, 2] and account.tables().offsets(1) == [0, 1]
    assert (first.rows, first.skipped, first.dead_lettered) == (5, 0, 1)
    assert (again.rows, again.skipped, again.dead_lettered) == (0, 5, 0)
    assert len(again.stored) == 5  # stored events, replayed by Kafka: the stock skips what it applied
    assert account.rows.calls["append"] == appends  # nothing appended again
    assert account.dlq.sent() == [(1, 2)] and len(account.tables().letters()) == 1


async def test_the_same_events_in_two_batches_in_flight_are_appended_once(account: Account) -> None:
    # After a rebalance Faust may deliver the same events in two batches; the second is appended while the first
    # waits for its commit.
    account.rows.commit_after_polls = 3
    sink = account.sink()
    events = [*orders(0, range(3)), *orders(1, range(2))]

    first, second = await asyncio.gather(sink.store(classified(events)), sink.store(classified(events)))

    assert account.tables().offsets(0) == [0, 1, 2] and account.tables().offsets(1) == [0, 1]
    assert (first.rows, first.skipped) == (5, 0) and (second.rows, second.skipped) == (0, 5)
    assert len(second.stored) == 5


async def test_many_batches_in_flight_are_stored_once_each_in_order(account: Account) -> None:
    # At a long commit delay the next batches are appended while the ones before wait (SINK_IN_FLIGHT_BYTES): they
    # come out in batch order, and a batch repeating what one in flight carries appends none of it again.
    account.rows.commit_after_polls = 5
    sink = account.sink()
    batches = [orders(0, range(n * 3, n * 3 + 3)) for n in range(6)] + [orders(0, range(15, 18))]
    done: list[int] = []

    async def store(n: int) -> None:
        await sink.store(classified(batches[n]))
        done.append(n)

    await asyncio.gather(*(store(n) for n in range(len(batches))))

    assert account.tables().offsets(0) == list(range(18)) and done == list(range(len(batches)))
    assert account.rows.most_pending >= 3  # appended while the ones before waited for their commit
