"""Each correction of Faust's internals (caves_faust/faust_patches.py) does what it is there for.

`ConsumerThread.seek_to_committed` runs against the real broker in tests/integration/test_consumer_offsets.py."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any, List

import faust
import pytest
from faust.types import TP, Message
from mode.utils.queues import ThrowableQueue

from caves_faust import faust_patches
from caves_faust.faust_patches import (
    AbandoningQueue,
    App,
    Consumer,
    FlowControl,
    ProducerClient,
    abandon,
    bootstrap_servers,
)
from tests.corpus import fake_event, fake_message


def app_with_unacked(*messages: Message) -> SimpleNamespace:
    """Just the part of a Faust app the corrections use: its consumer's set of messages awaiting an ack."""
    return SimpleNamespace(consumer=SimpleNamespace(unacked=set(messages)))


def test_resuming_a_running_flow_keeps_what_the_agents_have_buffered():
    flow = FlowControl()  # suspended until the first assignment, as Faust's
    buffer = ThrowableQueue(maxsize=10, flow_control=flow, clear_on_resume=True)
    flow.resume()
    buffer.put_nowait("offset 420")

    flow.resume()  # Faust's recovery resumes again once the stream partitions are seeked
    assert buffer.qsize() == 1

    flow.suspend()  # a rebalance: what was fetched before it is dropped, and read again from the committed offset
    flow.resume()
    assert buffer.qsize() == 0


async def test_clearing_an_agents_buffer_abandons_its_events_and_those_waiting_to_get_in():
    buffered, waiting, elsewhere = fake_event(0, 1), fake_event(0, 2), fake_event(0, 3)
    app = app_with_unacked(buffered.message, waiting.message, elsewhere.message)
    flow = FlowControl()
    flow.resume()
    queue = AbandoningQueue(app, maxsize=1, flow_control=flow)
    await queue.put(buffered)
    putting = asyncio.create_task(queue.put(waiting))  # the buffer is full: it waits to get in
    await asyncio.sleep(0)

    queue.clear()
    putting.cancel()
    assert app.consumer.unacked == {elsewhere.message}  # Faust no longer waits for the acks of the dropped ones
    assert queue.qsize() == 0


def test_abandon_forgets_only_the_messages_named():
    kept, dropped = fake_message(0, 1), fake_message(0, 2)
    app = app_with_unacked(kept, dropped)
    abandon(app, iter([dropped]))
    assert app.consumer.unacked == {kept}


async def test_subscribing_waits_until_every_topic_is_in_the_brokers_metadata(monkeypatch):
    calls: list[tuple] = []

    async def wait_for_topics(bootstrap: str, names: set[str], timeout: float) -> set[str]:
        calls.append(("wait", bootstrap, frozenset(names)))
        return set()

    async def subscribe(self, topics) -> None:
        calls.append(("subscribe", frozenset(topics)))

    monkeypatch.setattr(faust_patches, "wait_for_topics", wait_for_topics)
    monkeypatch.setattr(faust_patches.aiokafka_driver.Consumer, "subscribe", subscribe)
    consumer = object.__new__(Consumer)
    consumer.app = App("patches-test", broker="kafka://a:9092;kafka://b:9093")
    await consumer.subscribe(["sales_events", "stock-movements"])
    topics = frozenset({"sales_events", "stock-movements"})
    assert calls == [("wait", "a:9092,b:9093", topics), ("subscribe", topics)]


async def test_the_producers_client_waits_its_retry_backoff_after_a_failed_metadata_update():
    # No broker known, as while the only one is away: each update fails at once, and the sender asks again at once.
    client = ProducerClient(bootstrap_servers="127.0.0.1:9", retry_backoff_ms=200)
    started = time.monotonic()
    for _ in range(5):
        assert not await client._metadata_update(client.cluster, set())
    assert time.monotonic() - started >= 5 * 0.2


def test_bootstrap_servers_are_the_apps_broker_urls():
    assert bootstrap_servers(App("patches-test", broker="kafka://a:9092;kafka://b:9093")) == "a:9092,b:9093"


@pytest.mark.parametrize("depth", [1, 3])
def test_a_data_directory_is_created_with_its_missing_parents(tmp_path, depth):
    datadir = tmp_path.joinpath(*[f"level{n}" for n in range(depth)], "worker-data")
    app = App(f"patches-test-{depth}", datadir=str(datadir))
    app._create_directories()
    assert app.conf.tabledir.is_dir() and app.conf.tabledir.is_relative_to(datadir)


# The consumer's delivery race (Consumer.wait_first): the same outcomes as Faust's, without its tasks.

async def _put(queue: asyncio.Queue, value: str) -> str:
    await queue.put(value)
    return value


@pytest.fixture
async def consumer():
    """A new consumer of the app, made inside the test's event loop (mode binds its events to the loop they are
    made in), never started: the race needs none of its connections."""
    from caves_faust.faust_app import app

    consumer = Consumer(app.transport, callback=app.topics.on_message, on_partitions_revoked=app._on_partitions_revoked,
                        on_partitions_assigned=app._on_partitions_assigned, loop=asyncio.get_running_loop())
    assert isinstance(app.consumer, Consumer)  # the worker's consumer is of the same class
    return consumer


async def test_a_delivery_into_a_buffer_with_room_is_done_at_once(consumer):
    buffer: asyncio.Queue = asyncio.Queue(maxsize=1)
    tasks_before = len(asyncio.all_tasks())
    pending_tasks: list[int] = []

    async def counting_put() -> str:
        pending_tasks.append(len(asyncio.all_tasks()))
        return await _put(buffer, "offset 1")

    outcome = await consumer.wait_first(counting_put(), consumer.suspend_flow.wait())
    assert (outcome.results, outcome.stopped, buffer.qsize()) == (["offset 1"], False, 1)
    assert pending_tasks == [tasks_before]  # the callback ran in the caller's task: no race was started


async def test_a_delivery_into_a_full_buffer_waits_for_room(consumer):
    buffer: asyncio.Queue = asyncio.Queue(maxsize=1)
    buffer.put_nowait("offset 1")
    delivery = asyncio.ensure_future(consumer.wait_first(_put(buffer, "offset 2"), consumer.suspend_flow.wait()))
    await asyncio.sleep(0.05)
    assert not delivery.done()
    assert buffer.get_nowait() == "offset 1"  # the agent takes one: there is room again
    outcome = await asyncio.wait_for(delivery, 5)
    assert (outcome.results, outcome.stopped, buffer.get_nowait()) == (["offset 2"], False, "offset 2")


async def test_a_suspended_flow_interrupts_a_waiting_delivery(consumer):
    buffer: asyncio.Queue = asyncio.Queue(maxsize=1)
    buffer.put_nowait("offset 1")
    delivery = asyncio.ensure_future(consumer.wait_first(_put(buffer, "offset 2"), consumer.suspend_flow.wait()))
    await asyncio.sleep(0.05)
    consumer.suspend_flow.set()  # a rebalance begins: the delivery is abandoned, as in Faust
    try:
        outcome = await asyncio.wait_for(delivery, 5)
    finally:
        consumer.suspend_flow.clear()
    assert outcome.results == [True] and buffer.qsize() == 1  # the suspension won the race
    await asyncio.sleep(0.05)
    assert buffer.qsize() == 1  # the abandoned put was cancelled, not left to land later


async def test_a_failing_delivery_raises_as_in_faust(consumer):
    async def failing() -> None:
        await asyncio.sleep(0)
        raise ValueError("undecodable")

    with pytest.raises(ValueError, match="undecodable"):
        await consumer.wait_first(failing(), consumer.suspend_flow.wait())


async def test_a_delivery_while_the_flow_is_suspended_runs_the_race_as_faust_does(consumer):
    buffer: asyncio.Queue = asyncio.Queue(maxsize=1)
    consumer.suspend_flow.set()
    outcome = await consumer.wait_first(_put(buffer, "offset 1"), consumer.suspend_flow.wait())
    assert True in outcome.results  # the suspension is among the winners, as in Faust's own race


# Batches: a topic's fetched records handed over whole, past Faust's per-message path, with its bookkeeping kept.

@pytest.fixture
async def batch_app(monkeypatch):
    """An app of its own (never started) with a topic read in batches, its flow running as after an assignment
    of partitions 0-3 of that topic and partition 0 of another."""
    app = App("batches-test", broker="kafka://localhost:1", autodiscover=False)
    assigned = {TP("sales", p) for p in range(4)} | {TP("stock", 0)}
    monkeypatch.setattr(app.consumer, "assignment", lambda: assigned)
    batches = app.batches(app.topic("sales", value_type=bytes, value_serializer="raw"), max_buffered=4)
    await app.topics._update_indices()  # as at subscription: the topic is acknowledged, hence committed
    app.flow_control.resume()
    return app, batches


def _events(app, partition: int, offsets: range) -> list:
    """Events as Consumer._deliver_batch makes them, of the group's current generation."""
    events = []
    for offset in offsets:
        message = fake_message(partition, offset, topic="sales")
        message.generation_id = app.consumer_generation_id
        events.append(faust_patches.faust.Event(app, None, b"{}", {}, message))
    return events


async def _first(batches, max_events: int, within: float) -> list:
    taking = batches.take(max_events, within)
    try:
        return await asyncio.wait_for(taking.__anext__(), 5)
    finally:
        await taking.aclose()


async def test_a_batch_is_handed_over_tracked_and_counted_once_full(batch_app):
    app, batches = batch_app
    batches.put(TP("sales", 0), _events(app, 0, range(10, 13)))
    started = time.monotonic()
    batch = await _first(batches, 3, within=30)
    assert time.monotonic() - started < 5  # full: not held for `within`
    assert [e.message.offset for e in batch] == [10, 11, 12]
    assert {e.message for e in batch} <= app.consumer.unacked  # waited for until acknowledged or abandoned
    assert app.monitor.events_by_stream["sales"] == 3


async def test_a_partial_batch_waits_within_seconds_after_its_first_event(batch_app):
    app, batches = batch_app
    batches.put(TP("sales", 0), _events(app, 0, range(2)))
    started = time.monotonic()
    batch = await _first(batches, 100, within=0.3)
    assert len(batch) == 2 and 0.25 < time.monotonic() - started < 3


async def test_a_full_buffer_takes_the_topics_partitions_out_of_the_fetch_until_half_is_handed_over(batch_app):
    from aiokafka.structs import TopicPartition

    app, batches = batch_app
    consumer = app.consumer
    first, second, other = TP("sales", 0), TP("sales", 1), TP("stock", 0)
    consumer._active_partitions = {first, second, other}  # as after an assignment
    batches.put(first, _events(app, 0, range(3)))
    assert consumer._active_partitions == {first, second, other}  # room left: every partition fetched
    batches.put(TopicPartition("sales", 1), _events(app, 1, range(3)))  # 6 >= max_buffered (4): the topic pauses
    paused = {TP("sales", p) for p in range(4)}
    assert consumer._active_partitions == {other} and consumer._buffered_partitions == paused
    assert len(await _first(batches, 1, within=0)) == 1  # 5 wait: still more than half
    assert consumer._active_partitions == {other}
    assert len(await _first(batches, 3, within=0)) == 3  # 2 wait: half of max_buffered, fetched again
    assert consumer._get_active_partitions() == {*paused, other} and not consumer._buffered_partitions
    assert all(type(tp) is TP for tp in consumer._active_partitions)  # Faust asserts each is its own TP


async def test_a_rebalance_drops_what_waits_untracked(batch_app):
    app, batches = batch_app
    app.consumer._active_partitions = {TP("sales", 0)}
    batches.put(TP("sales", 0), _events(app, 0, range(6)))
    app.flow_control.suspend()
    app.flow_control.clear()  # as Faust does when partitions are revoked
    assert len(batches) == 0 and not batches.paused and not app.consumer.unacked  # read again from the commits


async def test_the_flush_window_counts_from_the_oldest_event_waiting(batch_app):
    app, batches = batch_app
    batches.put(TP("sales", 0), _events(app, 0, range(3)))
    await asyncio.sleep(0.4)
    started = time.monotonic()
    assert len(await _first(batches, 100, within=0.5)) == 3
    assert time.monotonic() - started < 0.3  # the oldest event waited 0.4 s already, not a new 0.5 s


async def test_events_of_an_earlier_generation_are_never_handed_over(batch_app):
    app, batches = batch_app
    batches.put(TP("sales", 0), _events(app, 0, range(2)))
    app.consumer_generation_id += 1
    batches.put(TP("sales", 1), _events(app, 1, range(5, 7)))
    batch = await _first(batches, 4, within=0)
    assert [(e.message.partition, e.message.offset) for e in batch] == [(1, 5), (1, 6)]


async def test_acknowledging_makes_the_offsets_committable_once(batch_app):
    app, batches = batch_app
    batches.put(TP("sales", 3), _events(app, 3, range(7, 10)))
    batch = await _first(batches, 3, within=0)
    messages = [e.message for e in batch]
    faust_patches.acknowledge(app, messages)
    faust_patches.acknowledge(app, messages)  # a second time changes nothing
    tp = messages[0].tp
    assert app.consumer._acked[tp] == [7, 8, 9] and not app.consumer.unacked
    assert app.monitor.messages_active == 0
    assert app.consumer._new_offset(tp) == 10


def _record(tp: TP, offset: int) -> Any:
    from aiokafka.structs import ConsumerRecord

    return ConsumerRecord(tp.topic, tp.partition, offset, 1_800_000_000_000, 0, None, b"{}", None, 0, 2, [])


@pytest.fixture
def fetching(batch_app, monkeypatch):
    """The app's consumer, whose fetch returns `fetched` (set by the test), never started."""
    from faust.transport.drivers import aiokafka as driver

    app, batches = batch_app
    fetched: dict = {}

    async def wait_next_records(self, timeout):
        return fetched, set(fetched)

    monkeypatch.setattr(driver.Consumer, "_wait_next_records", wait_next_records)
    consumer = app.consumer
    monkeypatch.setattr(consumer, "highwater", lambda tp: 10)
    consumer._active_partitions = set()
    return consumer, batches, fetched


async def test_fetched_records_of_a_batched_topic_go_to_its_batches_whole(fetching):
    consumer, batches, fetched = fetching
    sales, other = TP("sales", 0), TP("other", 0)
    fetched.update({sales: [_record(sales, o) for o in (4, 5, 9)], other: [_record(other, 1)]})
    consumer._read_offset[sales] = 5  # offset 4 was handed over already (a fetch from before a seek)
    records, _ = await consumer._wait_next_records(1.0)
    assert list(records) == [other]  # only the other topic's go on to Faust's per-message delivery
    assert [e.message.offset for e in batches.waiting] == [5, 9]  # offset 5 again: as Faust's `>=` admits
    assert consumer._read_offset[sales] == 9
    assert [(i.begin, i.end) for i in consumer._gap[sales]] == [(6, 10)]  # 6-8 missing (as Faust records it)


async def test_a_rebalance_beginning_during_a_delivery_hands_nothing_over_nor_moves_the_read_offset(
        fetching, monkeypatch):
    consumer, batches, fetched = fetching
    sales = TP("sales", 0)
    fetched[sales] = [_record(sales, o) for o in (3, 7)]
    consumer._read_offset[sales] = 2
    add_gap = consumer._add_gap

    async def gap_then_rebalance(*args):
        await add_gap(*args)
        consumer.suspend_flow.set()  # the rebalance begins while the delivery awaits

    monkeypatch.setattr(consumer, "_add_gap", gap_then_rebalance)
    await consumer._wait_next_records(1.0)
    assert len(batches) == 0 and consumer._read_offset[sales] == 2  # left to the seek to the committed offsets


def test_events_without_headers_share_one_dict_nobody_can_change():
    assert faust_patches.NO_HEADERS == {}
    with pytest.raises(TypeError):
        faust_patches.NO_HEADERS["caves_faust.dlq.origin"] = b"x"
    with pytest.raises(TypeError):
        faust_patches.NO_HEADERS.update(a=b"x")
    assert faust_patches.NO_HEADERS == {}


def test_a_sales_record_sheds_its_own_set_of_lazily_evaluated_fields_and_reads_the_same():
    from caves_faust.events.validation import validate

    payloads = [b'{"event_type":"ORDER_CREATED","order_line_id":7,"customer_id":3,"product_id":1015,"quantity":2,'
                b'"product_name":"Margaux","total_price":51.5,"sales_channel":"web"}',
                b'{"event_type":"INVENTORY_ADJUSTED","event_id":"e-1","product_id":1015,"quantity_change":-4,'
                b'"adjustment_type":"SPOILAGE","warehouse":"Bordeaux"}']
    for payload in payloads:
        record, twin = validate(payload).event, validate(payload).event
        faust_patches.shed_evaluated_fields(record)
        assert record.__evaluated_fields__ is faust_patches.NOTHING_EVALUATED  # shared, not one per event
        assert record.asdict() == twin.asdict() and record == twin


class Line(faust.Record, namespace="caves_faust.tests.Line"):
    bottles: int


class Order(faust.Record, namespace="caves_faust.tests.Order"):
    lines: List[Line]  # a list of records: coerced when first read


def test_a_record_with_a_lazily_coerced_field_keeps_its_own_set():
    order = Order(lines=[{"bottles": 6}])
    faust_patches.shed_evaluated_fields(order)
    assert order.__evaluated_fields__ is not faust_patches.NOTHING_EVALUATED
    assert order.lines == [Line(bottles=6)] and order.__evaluated_fields__ == {"lines"}
