"""The sink in warehouse mode against a fake warehouse (tests/fakes.py): what `store` leaves in the tables, in the DLQ
topic and in what it returns, for a refused row, an outage, a fenced partition, a replayed letter and a batch
delivered again. Each batch goes through the real `classify`, `WarehouseSink`, `stored_copies` and bisection."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import partial

import pytest
from faust.types import EventT

from caves_faust.sink.replays import stored_copies
from caves_faust.sink.rows import warehouse_row
from caves_faust.sink.warehouse import WarehouseSink
from caves_faust.snowflake.connection import Batch
from tests.fakes import (
    DLQ_TOPIC,
    INVALID,
    REFUSED,
    RETRY,
    TOPIC,
    FakeDeadLetters,
    FakeSnowflake,
    FakeWarehouse,
    classified,
    order,
    orders,
    retries,
    sales_event,
)

# A sink that never returns fails its test: each takes milliseconds.
pytestmark = pytest.mark.timeout(10)


@dataclass
class Account:
    """One fake account (its warehouse connection) and the DLQ topic."""

    warehouse: FakeWarehouse = field(default_factory=FakeWarehouse)
    dlq: FakeDeadLetters = field(default_factory=FakeDeadLetters)

    @property
    def tables(self) -> FakeSnowflake:
        return self.warehouse.snowflake

    def sink(self, dlq: FakeDeadLetters | None = None) -> WarehouseSink:
        """A worker's sink (a new one: as after a crash or a restart)."""
        return WarehouseSink(self.warehouse, dlq or self.dlq, TOPIC, RETRY, stopping=lambda: False,
                             stale_lock_seconds=60, what_to_check="(the fake account)",
                             find_replayed=partial(stored_copies, self.warehouse))


@pytest.fixture
def account() -> Account:
    return Account()


async def test_a_row_snowflake_refuses_is_dead_lettered_and_the_others_stored(account: Account) -> None:
    events = [*orders(0, range(0, 1)), sales_event(0, 1, order(name=REFUSED)), *orders(0, range(2, 3)),
              sales_event(0, 3, INVALID)]

    outcome = await account.sink().store(classified(events))

    assert account.tables.offsets(0) == [0, 2]
    assert (outcome.rows, outcome.skipped, outcome.rejected, outcome.dead_lettered) == (2, 0, 1, 1)
    assert [a.offset for a in outcome.stored] == [0, 2]  # the refused event moves no stock
    assert account.dlq.sent("snowflake_rejected") == [(0, 1)] and account.dlq.sent("wrong_type") == [(0, 3)]
    [refused] = [m for m in account.dlq.messages if m.error.error_type == "snowflake_rejected"]
    assert "is not recognized" in refused.error.message  # Snowflake's own reason
    # One commit: the refused row's letter in it, the mark past the whole batch.
    [transaction] = account.warehouse.transactions
    assert sorted((letter["offset"], letter["error_type"]) for letter in map(json.loads, transaction.letters)) == [
        (1, "snowflake_rejected"), (3, "wrong_type")]
    assert transaction.high_waters == {0: (None, 3)}
    assert sorted(row.source[2] for row in account.tables.letters("snowflake_rejected")) == [1]
    assert account.warehouse.calls["accepts"] >= 2  # the probe row, then the bisection


@pytest.mark.parametrize("call", ["bootstrap", "high_waters", "write"])
async def test_an_outage_is_retried_until_the_batch_is_stored_once(account: Account, call: str) -> None:
    account.warehouse.fail(call, times=3)
    before = retries("outage")

    outcome = await account.sink().store(classified(orders(0, range(3)) + orders(1, range(2))))

    assert account.tables.offsets(0) == [0, 1, 2] and account.tables.offsets(1) == [0, 1]
    assert (outcome.rows, outcome.skipped, outcome.rejected, len(outcome.stored)) == (5, 0, 0, 5)
    assert retries("outage") - before == 3
    assert account.warehouse.calls["reset"] == 3  # the connection dropped after each
    assert account.warehouse.calls[call] == 4 and len(account.warehouse.transactions) == 1


async def test_a_commit_whose_answer_was_lost_is_not_written_again(account: Account) -> None:
    sink = account.sink()
    await sink.store(classified(orders(0, range(2))))  # partition 0 has a mark now
    account.warehouse.lose_commit_answer()

    outcome = await sink.store(classified(orders(0, range(2, 5))))

    assert account.tables.offsets(0) == [0, 1, 2, 3, 4]
    assert [a.offset for a in outcome.stored] == [2, 3, 4] and outcome.rows + outcome.skipped == 3
    # The write committed, its retry fenced out by the mark it moved, the marks read again: nothing left to write.
    assert account.warehouse.calls["write"] == 3 and account.warehouse.calls["high_waters"] == 2


async def test_a_first_commit_of_a_partition_whose_answer_was_lost_is_not_written_again(account: Account) -> None:
    account.warehouse.lose_commit_answer()

    await account.sink().store(classified(orders(0, range(3))))

    assert account.tables.offsets(0) == [0, 1, 2]


async def test_a_mark_moved_by_another_writer_fences_the_write_out_and_the_marks_are_read_again(
        account: Account) -> None:
    sink = account.sink()
    await sink.store(classified(orders(0, range(3))))
    events = orders(0, range(3, 7))
    # Another writer (the partition's next owner, or a zombie) stores offsets 3 and 4 just before our write.
    theirs = classified(orders(0, range(3, 5)))
    account.warehouse.another_writer(TOPIC, Batch([warehouse_row(a) for a in theirs.accepted], {0: (2, 4)}))

    outcome = await sink.store(classified(events))

    assert account.tables.offsets(0) == [0, 1, 2, 3, 4, 5, 6]  # none doubled
    assert (outcome.rows, outcome.skipped) == (2, 2)
    assert [a.offset for a in outcome.stored] == [3, 4, 5, 6]  # all in the warehouse now
    # The first batch's write, the write fenced out, the write above the mark read again.
    assert account.warehouse.calls["write"] == 3
    assert account.warehouse.calls["high_waters"] == 2 and {0} in account.dlq.forgotten
    assert account.warehouse.transactions[-1].high_waters == {0: (4, 6)}
    assert account.tables.marks == {(TOPIC, None, 0): 6}


async def test_a_replayed_letter_is_stored_once_and_only_its_stored_copy_moves_the_stock(account: Account) -> None:
    sink = account.sink()
    await sink.store(classified([*orders(0, range(1)), sales_event(0, 1, INVALID)]))
    letter = account.dlq.origin(0, 1)  # what `dlq replay` names in its replays' headers
    assert not account.tables.letters("wrong_type")[0].replayed
    fixed = order(product_id=1, quantity=6, line="L-X")

    # Replayed twice (two operators), both copies in one batch.
    outcome = await sink.store(classified([sales_event(0, 2, fixed, letter.headers()),
                                           sales_event(0, 3, fixed, letter.headers()), *orders(0, range(4, 5))]))

    assert account.tables.offsets(0) == [0, 2, 4]
    assert [a.offset for a in outcome.stored] == [2, 4] and (outcome.rows, outcome.skipped) == (2, 1)
    assert json.loads(account.warehouse.transactions[-1].replayed) == [{"t": TOPIC, "p": 0, "o": 1}]
    assert account.tables.letters("wrong_type")[0].replayed
    [copy] = [r for r in account.tables.raw_events if r.offset == 2]
    assert copy.metadata["replayed_from"] == {"topic": DLQ_TOPIC, "partition": 0, "offset": 0}

    # Replayed once more, a batch later: its copy is stored already.
    again = await sink.store(classified([sales_event(0, 5, fixed, letter.headers())]))

    assert account.tables.offsets(0) == [0, 2, 4]
    assert again.stored == [] and (again.rows, again.skipped) == (0, 1)
    assert account.warehouse.transactions[-1].rows == [] and account.warehouse.transactions[-1].replayed == ""
    assert account.warehouse.transactions[-1].high_waters == {0: (4, 5)}  # the mark moves past it all the same


@pytest.mark.parametrize("after_a_crash", [False, True])
async def test_a_batch_delivered_again_is_skipped(account: Account, after_a_crash: bool) -> None:
    def batch() -> list[EventT]:  # as Kafka delivers it, each time
        return [*orders(0, range(3)), *orders(1, range(2)), sales_event(1, 2, INVALID)]

    sink = account.sink()
    first = await sink.store(classified(batch()))
    # After a crash a new worker stores it, with the same warehouse and DLQ topic.
    again_sink = account.sink(FakeDeadLetters(account.dlq.messages)) if after_a_crash else sink

    again = await again_sink.store(classified(batch()))

    assert account.tables.offsets(0) == [0, 1, 2] and account.tables.offsets(1) == [0, 1]
    assert (first.rows, first.skipped, first.dead_lettered) == (5, 0, 1)
    assert (again.rows, again.skipped, again.dead_lettered) == (0, 5, 0)
    assert len(again.stored) == 5  # stored events, replayed by Kafka: the stock skips what it applied
    assert len(account.warehouse.transactions) == 1 and account.dlq.sent() == [(1, 2)]
    assert len(account.tables.letters()) == 1


async def test_a_recreated_topic_is_stored_from_no_mark_and_said_once(account: Account, caplog) -> None:
    """The same offsets in a topic deleted and created again are new events: the old topic's marks cover none."""
    await account.sink().store(classified(orders(0, range(0, 5)), topic_id="A"))
    sink = account.sink()
    outcome = await sink.store(classified(orders(0, range(0, 3)), topic_id="B"))
    await sink.store(classified(orders(0, range(3, 4)), topic_id="B"))

    assert (outcome.rows, outcome.skipped) == (3, 0)
    assert [(row.metadata["topic_id"], row.offset) for row in account.tables.raw_events] == [
        *(("A", o) for o in range(5)), *(("B", o) for o in range(4))]
    assert account.tables.marks == {(TOPIC, "A", 0): 4, (TOPIC, "B", 0): 3}
    said = [r for r in caplog.records if "deleted and created again" in r.getMessage()]
    assert len(said) == 1 and said[0].levelname == "WARNING" and "topic id B, was A" in said[0].getMessage()
