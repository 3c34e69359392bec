"""The private and internal names of Faust, mode and aiokafka that caves_faust/faust_patches.py relies on are there.

An upgrade that removes, renames or reshapes one of them fails here with the name, the patch that relies on it and
why, instead of failing at run time (or not at all: an override whose base method is gone is never called).

- `PRIVATES`: each imported internal, overridden method (with its signature, annotations left out), and attribute the
  patches read or write, on the class or on an instance built as cheaply as Faust would (no broker, no network).
- `CALL_SITES`: where the library calls what a patch overrides; a patch the library no longer calls does nothing.
- The names the patches give their own attributes do not shadow one of the library's.
- Cross-check: faust_patches.py is read (not imported) and every library import, overridden method and private
  attribute it uses must be in the tables above, so that a new patch comes with its check.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import importlib.metadata
import importlib.util
import inspect
import operator
from collections.abc import Iterator, MutableSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Coroutine

import pytest

PATCHES = Path(__file__).resolve().parents[2] / "caves_faust" / "faust_patches.py"
LIBRARIES = {"faust": "faust-streaming", "mode": "mode-streaming", "aiokafka": "aiokafka"}
DRIVER = "faust.transport.drivers.aiokafka"
SENSOR = "faust.sensors.prometheus:PrometheusMonitor"


@dataclass(frozen=True)
class Private:
    """`owner` is "module" or "module:Qualified.Name"; `name` is looked up on it, or on an instance of it
    (`on_instance`: instance attributes set in `__init__`, built by `Specimens`). `shape` is the expected
    signature without annotations, "async " in front for a coroutine function, or the descriptor's type name."""

    owner: str
    name: str
    patch: str
    why: str
    shape: str | None = None
    on_instance: bool = False

    @property
    def id(self) -> str:
        return f"{dotted(self.owner)}.{self.name}"


PRIVATES = [
    # Imports of faust_patches.py.
    Private("faust", "App", "App", "the app class the corrections subclass"),
    Private("aiokafka", "AIOKafkaClient", "ProducerClient", "the producer's client, subclassed and swapped in"),
    Private("faust.transport.drivers", "aiokafka", "Consumer, ConsumerThread, Producer, Transport",
            "Faust's Kafka driver module, whose classes the corrections subclass"),
    Private(DRIVER, "Consumer", "Consumer", "Faust's Kafka consumer"),
    Private(DRIVER, "AIOKafkaConsumerThread", "ConsumerThread", "the thread running aiokafka's consumer"),
    Private(DRIVER, "Producer", "Producer", "Faust's Kafka producer"),
    Private(DRIVER, "Transport", "Transport", "the transport App._new_transport builds"),
    Private("faust.types", "TP", "committed_offset", "the partitions' type"),
    Private("faust.types", "AppT", "committed_offset, abandon", "the app's type"),
    Private("faust.types", "EventT", "AbandoningQueue.clear", "isinstance check of the buffered events"),
    Private("faust.types", "Message", "abandon", "the messages' type"),
    Private("faust.types", "TopicT", "App.batches", "the topic read in batches"),
    Private("mode.utils.queues", "FlowControlQueue", "Batches.__init__",
            "what the flow control manages (Batches has its clear())"),
    Private("faust.types.transports", "TransportT", "App._new_transport", "the transport's type"),
    Private("mode.services", "WaitResults", "Consumer.wait_first",
            "the fast path builds the race's outcome itself", shape="(done, results, stopped)"),
    Private("mode.utils.objects", "cached_property", "App.flow_control", "as Faust's own flow_control"),
    Private("mode.utils.queues", "FlowControlEvent", "FlowControl", "the app's flow control, subclassed"),
    Private("mode.utils.queues", "ThrowableQueue", "AbandoningQueue", "the agents' buffers, subclassed"),
    # ScrapeTimeMonitor: Faust's Prometheus sensor, its per-message updates kept in Monitor's plain fields.
    Private("faust.sensors.monitor", "Monitor", "ScrapeTimeMonitor", "the plain sensor whose on_* it calls"),
    Private("faust.sensors.prometheus", "PrometheusMonitor", "ScrapeTimeMonitor", "Faust's Prometheus sensor"),
    Private("faust.types", "StreamT", "ScrapeTimeMonitor", "the streams' type"),
    Private(SENSOR, "__init__", "ScrapeTimeMonitor.__init__", "built with metrics=",
            shape="(self, metrics, **kwargs)"),
    *(Private(owner, name, f"ScrapeTimeMonitor.{name}", "overridden: Monitor's counts only, exported by sync()",
              shape=signature)
      for owner in (SENSOR, "faust.sensors.monitor:Monitor")
      for name, signature in (("on_message_in", "(self, tp, offset, message)"),
                              ("on_stream_event_in", "(self, tp, offset, stream, event)"),
                              ("on_stream_event_out", "(self, tp, offset, stream, event, state=None)"),
                              ("on_message_out", "(self, tp, offset, message)"))),
    Private(SENSOR, "_stream_label", "ScrapeTimeMonitor.sync", "the stream's label, as Faust's sensor names it",
            shape="(self, stream)"),
    Private(SENSOR, "_metrics", "ScrapeTimeMonitor.sync", "the FaustMetrics the sensor exports to", on_instance=True),
    # Consumer: overridden, called, read.
    Private(f"{DRIVER}:Consumer", "subscribe", "Consumer.subscribe",
            "overridden to wait for the topics' metadata, then calls super()", shape="async (self, topics)"),
    Private(f"{DRIVER}:Consumer", "_new_consumer_thread", "Consumer._new_consumer_thread",
            "overridden to build ConsumerThread", shape="(self)"),
    Private(f"{DRIVER}:Consumer", "wait_first", "Consumer.wait_first",
            "overridden: the callback first, the race only when it suspends",
            shape="async (self, *coros, timeout=None)"),
    Private(f"{DRIVER}:Consumer", "_is_changelog_tp", "ConsumerThread.seek_to_committed",
            "changelog partitions are left to table recovery", shape="(self, tp)"),
    Private(f"{DRIVER}:Consumer", "unacked", "abandon",
            "difference_update on it: Faust no longer waits for the abandoned messages", shape="property"),
    Private(f"{DRIVER}:Consumer", "app", "Consumer.subscribe", "bootstrap_servers(self.app)", on_instance=True),
    Private(f"{DRIVER}:Consumer", "loop", "Consumer._new_consumer_thread", "ConsumerThread(self, loop=self.loop, ...)",
            on_instance=True),
    Private(f"{DRIVER}:Consumer", "beacon", "Consumer._new_consumer_thread",
            "ConsumerThread(..., beacon=self.beacon)", on_instance=True),
    Private(f"{DRIVER}:Consumer", "suspend_flow", "Consumer._interrupted", "no fast path while the flow is suspended",
            on_instance=True),
    Private(f"{DRIVER}:Consumer", "_stopped", "Consumer._interrupted", "no fast path once the consumer stops",
            on_instance=True),
    Private(f"{DRIVER}:Consumer", "_crashed", "Consumer._interrupted", "no fast path once the consumer crashed",
            on_instance=True),
    # Consumer: the batch path (Consumer._wait_next_records, _deliver_batch), what Faust's per-message path uses.
    Private(f"{DRIVER}:Consumer", "_wait_next_records", "Consumer._wait_next_records",
            "overridden: the records of a topic read in batches are taken out of the fetched ones",
            shape="async (self, timeout)"),
    Private(f"{DRIVER}:Consumer", "_to_message", "Consumer._deliver_batch", "a record as Faust's Message",
            shape="(self, tp, record)"),
    Private(f"{DRIVER}:Consumer", "_add_gap", "Consumer._deliver_batch",
            "a gap in the offsets recorded, so that commits go past it",
            shape="async (self, tp, offset_from, offset_to)"),
    Private(f"{DRIVER}:Consumer", "track_message", "Batches.hand_over", "an event handed over is waited for",
            shape="(self, message)"),
    Private(f"{DRIVER}:Consumer", "ack", "acknowledge", "True when this call acknowledged it",
            shape="(self, message)"),
    Private(f"{DRIVER}:Consumer", "highwater", "Consumer._deliver_batch", "for the lag's end offset",
            shape="(self, tp)"),
    Private(f"{DRIVER}:Consumer", "on_buffer_full", "Batches.put",
            "a partition taken out of the fetch while the buffer is full", shape="(self, tp)"),
    Private(f"{DRIVER}:Consumer", "on_buffer_drop", "Batches.hand_over", "and put back once half is handed over",
            shape="(self, tp)"),
    Private(f"{DRIVER}:Consumer", "flow_active", "Consumer._wait_next_records", "no hand-over while suspended",
            on_instance=True),
    Private(f"{DRIVER}:Consumer", "_read_offset", "Consumer._deliver_batch",
            "the last offset handed over per partition (a defaultdict of None)", on_instance=True),
    Private(f"{DRIVER}:Consumer", "_buffered_partitions", "Consumer._wait_next_records",
            "partitions whose records are delivered though paused", on_instance=True),
    Private(f"{DRIVER}:Consumer", "_commit_every", "Consumer._deliver_batch", "broker_commit_every",
            on_instance=True),
    Private(f"{DRIVER}:Consumer", "_n_acked", "Consumer._deliver_batch", "acknowledgements since the last commit",
            on_instance=True),
    Private("faust:App", "consumer_generation_id", "Batches.hand_over",
            "events of an older generation are dropped"),
    Private("faust.sensors.monitor:Monitor", "stream_inbound_time", "Batches.hand_over",
            "Faust's check of stalled streams reads it per partition"),
    Private("faust.sensors.monitor:Monitor", "events_by_stream", "Batches.hand_over",
            "the events per stream series"),
    Private("faust.sensors.monitor:Monitor", "events_total", "Batches.hand_over", "the events series"),
    Private(f"{DRIVER}:Consumer", "_committed_offset", "committed_offset",
            "the group's committed offsets Faust keeps, read with .get(tp)", on_instance=True),
    # ConsumerThread.
    Private(f"{DRIVER}:AIOKafkaConsumerThread", "__init__", "Consumer._new_consumer_thread",
            "built as ConsumerThread(consumer, loop=..., beacon=...)", shape="(self, consumer, **kwargs)"),
    Private("mode.threads:ServiceThread", "__init__", "Consumer._new_consumer_thread",
            "takes the loop= given to ConsumerThread", shape="(self, *, executor=None, loop=None, thread_loop=None, "
            "Worker=None, **kwargs)"),
    Private("mode.services:Service", "__init__", "Consumer._new_consumer_thread",
            "takes the beacon= given to ConsumerThread", shape="(self, *, beacon=None, loop=None)"),
    Private(f"{DRIVER}:AIOKafkaConsumerThread", "seek_to_committed", "ConsumerThread.seek_to_committed",
            "overridden to seek never-committed partitions to their beginning", shape="async (self)"),
    Private(f"{DRIVER}:AIOKafkaConsumerThread", "seek_to_beginning", "ConsumerThread.seek_to_committed",
            "called with the never-committed partitions", shape="async (self, *partitions)"),
    Private(f"{DRIVER}:AIOKafkaConsumerThread", "consumer", "ConsumerThread.seek_to_committed",
            "self.consumer._is_changelog_tp(tp)", on_instance=True),
    # Producer and its client (the producer fix).
    Private(f"{DRIVER}:Producer", "_new_producer", "Producer._new_producer",
            "overridden to swap the client's class", shape="(self, transactional_id=None)"),
    Private("aiokafka:AIOKafkaProducer", "client", "Producer._new_producer",
            "producer.client.__class__ = ProducerClient", on_instance=True),
    Private("aiokafka:AIOKafkaClient", "add_topic", "ProducerClient.add_topic",
            "overridden so that the refreshes are never narrowed to the topics looked up", shape="(self, topic)"),
    Private("aiokafka:AIOKafkaClient", "_metadata_update", "ProducerClient._metadata_update",
            "overridden to pace the failed updates, returns whether it updated",
            shape="async (self, cluster_metadata, topics)"),
    Private("aiokafka:AIOKafkaClient", "force_metadata_update", "ProducerClient.add_topic",
            "returned for a topic not known yet", shape="(self)"),
    Private("aiokafka:AIOKafkaClient", "_wait_on_metadata", "ProducerClient.add_topic",
            "the producer's way into add_topic (send, partitions_for)", shape="async (self, topic)"),
    Private("aiokafka:AIOKafkaClient", "_md_synchronizer", "ProducerClient._metadata_update",
            "the refresh loop calling _metadata_update with _topics", shape="async (self)"),
    Private("aiokafka:AIOKafkaClient", "cluster", "ProducerClient.add_topic",
            "self.cluster.partitions_for_topic(topic)", on_instance=True),
    Private("aiokafka:AIOKafkaClient", "_loop", "ProducerClient.add_topic",
            "self._loop.create_future() for a known topic", on_instance=True),
    Private("aiokafka:AIOKafkaClient", "_retry_backoff", "ProducerClient._metadata_update",
            "asyncio.sleep(self._retry_backoff) after a failed update: seconds", on_instance=True),
    Private("aiokafka:AIOKafkaClient", "_topics", "ProducerClient.add_topic",
            "left empty (add_topic no longer fills it): an empty set refreshes every topic", on_instance=True),
    Private("aiokafka.cluster:ClusterMetadata", "partitions_for_topic", "ProducerClient.add_topic",
            "None for a topic not in the metadata", shape="(self, topic)"),
    # Transport.
    Private(f"{DRIVER}:Transport", "Consumer", "Transport.Consumer", "the consumer class the transport builds"),
    Private(f"{DRIVER}:Transport", "Producer", "Transport.Producer", "the producer class the transport builds"),
    Private("faust.transport.base:Transport", "__init__", "App._new_transport",
            "built as Transport(self.conf.broker_consumer, self)", shape="(self, url, app, loop=None)"),
    # Flow control and the agents' buffers.
    Private("mode.utils.queues:FlowControlEvent", "__init__", "App.flow_control", "built as FlowControl(loop=...)",
            shape="(self, *, initially_suspended=True, loop=None)"),
    Private("mode.utils.queues:FlowControlEvent", "resume", "FlowControl.resume",
            "overridden: no clearing when the flow already runs", shape="(self)"),
    Private("mode.utils.queues:FlowControlEvent", "is_active", "FlowControl.resume", "whether the flow runs",
            shape="(self)"),
    Private("mode.utils.queues:ThrowableQueue", "__init__", "AbandoningQueue.__init__",
            "overridden, the arguments passed on", shape="(self, *args, **kwargs)"),
    Private("mode.utils.queues:FlowControlQueue", "__init__", "App.FlowControlQueue",
            "AbandoningQueue(app, maxsize=..., flow_control=..., clear_on_resume=...)",
            shape="(self, maxsize=0, *, flow_control, clear_on_resume=False, **kwargs)"),
    Private("mode.utils.queues:ThrowableQueue", "put", "AbandoningQueue.put",
            "overridden to know the events waiting to get in", shape="async (self, value)"),
    Private("mode.utils.queues:ThrowableQueue", "clear", "AbandoningQueue.clear",
            "overridden to abandon what is dropped", shape="(self)"),
    Private("mode.utils.queues:ThrowableQueue", "_queue", "AbandoningQueue.clear",
            "asyncio.Queue's deque of the buffered events", on_instance=True),
    # App.
    Private("faust:App", "flow_control", "App.flow_control", "overridden to build FlowControl",
            shape="cached_property"),
    Private("faust:App", "_new_transport", "App._new_transport", "overridden to build Transport", shape="(self)"),
    Private("faust:App", "FlowControlQueue", "App.FlowControlQueue", "overridden to build AbandoningQueue",
            shape="(self, maxsize=None, *, clear_on_resume=False)"),
    Private("faust:Record", "_options", "shed_evaluated_fields", "the record class's field descriptors"),
    Private("faust.models.fields:FieldDescriptor", "lazy_coercion", "shed_evaluated_fields",
            "only a lazily coerced field reads __evaluated_fields__"),
    Private("mode.utils.queues:FlowControlEvent", "manage_queue", "Batches.__init__",
            "cleared with the agents' buffers at a rebalance", shape="(self, queue)"),
    Private("faust:App", "_create_directories", "App._create_directories",
            "overridden to create the data directory's parents", shape="(self)"),
]


@dataclass(frozen=True)
class CallSite:
    """`needle` must be in the source of `function` ("module:Qualified.name"), whitespace left out."""

    function: str
    needle: str
    patch: str
    why: str


CALL_SITES = [
    CallSite("faust.app.base:App.transport", "self._new_transport()", "App._new_transport",
             "the app builds its transport there: every consumer and producer correction hangs on it"),
    CallSite("faust.transport.base:Transport.create_consumer", "self.Consumer(", "Transport.Consumer",
             "the transport builds its consumer from its Consumer class"),
    CallSite("faust.transport.base:Transport.create_producer", "self.Producer(", "Transport.Producer",
             "the transport builds its producer from its Producer class"),
    CallSite("faust.transport.consumer:ThreadDelegateConsumer.__init__", "self._new_consumer_thread()",
             "Consumer._new_consumer_thread", "the consumer builds its thread there"),
    CallSite("faust.transport.consumer:ThreadDelegateConsumer.seek_to_committed", "self._thread.seek_to_committed()",
             "ConsumerThread.seek_to_committed", "the rebalance's seek to the committed offsets goes to the thread"),
    CallSite("faust.models.record:Record._BUILD_init", '"self.__evaluated_fields__ = set()",',
             "shed_evaluated_fields", "each instance gets a set of its own, which the patch replaces by a shared one"),
    CallSite("faust.transport.consumer:Consumer.getmany", "awaitself._wait_next_records(timeout)",
             "Consumer._wait_next_records", "the fetched records reach the per-message path through it"),
    CallSite("faust.transport.consumer:Consumer._drain_messages",
             "self.wait_first(callback(message), self.suspend_flow.wait())", "Consumer.wait_first",
             "the fast path expects the fetcher's race: the callback first, then the flow's suspension"),
    CallSite(f"{DRIVER}:Producer.on_start", "self._new_producer()", "Producer._new_producer",
             "the producer builds its aiokafka producer there"),
    CallSite("aiokafka.client:AIOKafkaClient._wait_on_metadata", "self.add_topic(topic)", "ProducerClient.add_topic",
             "the producer learns a topic through add_topic"),
    CallSite("aiokafka.client:AIOKafkaClient._md_synchronizer", "self._metadata_update(self.cluster, topics)",
             "ProducerClient._metadata_update", "every refresh goes through _metadata_update"),
    CallSite("aiokafka.client:AIOKafkaClient._md_synchronizer", "topics = self._topics", "ProducerClient.add_topic",
             "the refreshes ask for the topics in _topics, which the patch leaves empty"),
    CallSite("aiokafka.client:AIOKafkaClient._metadata_update", "MetadataRequest(list(topics) if topics else None)",
             "ProducerClient.add_topic", "no topics asks for every topic: the DLQ and changelogs stay known"),
    CallSite("faust.app.base:App.on_first_start", "self._create_directories()", "App._create_directories",
             "the worker creates its directories there"),
    CallSite("faust.channels:Channel.queue", "self.app.FlowControlQueue(", "App.FlowControlQueue",
             "the agents' buffers are the channels' queues"),
    CallSite("mode.utils.queues:FlowControlEvent.resume", "self.clear()", "FlowControl.resume",
             "resuming clears the queues: what FlowControl skips when the flow already runs"),
    CallSite("mode.utils.queues:FlowControlEvent.clear", "queue.clear()", "AbandoningQueue.clear",
             "the flow control clears its queues through their clear()"),
]

# Names faust_patches.py gives its own attributes: they must not shadow one of the library's.
OWN_NAMES = [
    (f"{DRIVER}:Consumer", "_interrupted", False, "Consumer._interrupted"),
    (f"{DRIVER}:Consumer", "_deliver_batch", False, "Consumer._deliver_batch"),
    ("faust:App", "batch_sources", False, "App.batch_sources"),
    ("faust:App", "batches", False, "App.batches"),
    ("mode.utils.queues:ThrowableQueue", "_putting", True, "AbandoningQueue.put"),
    ("mode.utils.queues:ThrowableQueue", "app", True, "AbandoningQueue.clear"),
    ("faust.sensors.prometheus:PrometheusMonitor", "sync", False, "ScrapeTimeMonitor.sync"),
    ("faust.sensors.prometheus:PrometheusMonitor", "_advance", False, "ScrapeTimeMonitor._advance"),
    ("faust.sensors.prometheus:PrometheusMonitor", "_exported", True, "ScrapeTimeMonitor.__init__"),
]
# Checked by test_the_producer_client_class_can_be_swapped rather than in PRIVATES.
CHECKED_APART = {"__class__"}


def dotted(owner: str) -> str:
    return owner.replace(":", ".")


def library(owner: str) -> str:
    root = owner.split(".")[0].split(":")[0]
    try:
        return f"{LIBRARIES[root]} {importlib.metadata.version(LIBRARIES[root])}"
    except (KeyError, importlib.metadata.PackageNotFoundError):
        return root


def resolve(owner: str, patch: str) -> Any:
    """The module or object `owner` names; a failure names the module or attribute that is gone and the patch."""
    module_name, _, qualname = owner.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        pytest.fail(f"cannot import {module_name} ({exc!r}): faust_patches.{patch} relies on it; recheck the patch "
                    f"against the new {library(owner)}")
    try:
        return operator.attrgetter(qualname)(module) if qualname else module
    except AttributeError:
        pytest.fail(f"{module_name}.{qualname} is gone: faust_patches.{patch} relies on it; recheck the patch "
                    f"against the new {library(owner)}")


def shape(owner: Any, name: str) -> str:
    """`name`'s signature on `owner`, annotations left out, "async " for a coroutine function; or the type name
    of a descriptor that is not a function (property, cached_property)."""
    static = inspect.getattr_static(owner, name)
    if not callable(static) and not isinstance(static, (staticmethod, classmethod)):
        return type(static).__name__
    member = getattr(owner, name)
    signature = inspect.signature(member)
    bare = signature.replace(
        parameters=[p.replace(annotation=inspect.Parameter.empty) for p in signature.parameters.values()],
        return_annotation=inspect.Signature.empty)
    return ("async " if inspect.iscoroutinefunction(member) else "") + str(bare)


class Specimens:
    """Library objects built as Faust builds them, once, on an event loop of their own: no broker, no network."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._built: dict[str, Any] = {}
        self._closing: list[Callable[[], Coroutine[Any, Any, Any]]] = []

    def inside(self, build: Callable[[], Any]) -> Any:
        """`build()` called on the running event loop, as Faust builds these objects in a worker."""

        async def call() -> Any:
            return build()

        return self.loop.run_until_complete(call())

    def app(self) -> Any:
        if "app" not in self._built:
            import faust

            self._built["app"] = self.inside(
                lambda: faust.App("caves-faust-library-privates", broker="kafka://localhost:1", autodiscover=False))
        return self._built["app"]

    def of(self, owner: str) -> Any:
        if owner not in self._built:
            build = {
                f"{DRIVER}:Consumer": self._consumer,
                f"{DRIVER}:AIOKafkaConsumerThread": self._consumer_thread,
                "aiokafka:AIOKafkaProducer": self._producer,
                "aiokafka:AIOKafkaClient": self._client,
                "mode.utils.queues:ThrowableQueue": self._queue,
                "faust.sensors.prometheus:PrometheusMonitor": self._prometheus_monitor,
            }[owner]
            try:
                self._built[owner] = build()
            except Exception as exc:
                pytest.fail(f"could not build a {dotted(owner)} as Faust does ({exc!r}): the checks of its "
                            f"instance attributes cannot run; recheck faust_patches against the new {library(owner)}")
        return self._built[owner]

    def _prometheus_monitor(self) -> Any:
        from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
        from prometheus_client import CollectorRegistry

        return PrometheusMonitor(metrics=FaustMetrics.create(CollectorRegistry(), "faust"))

    def _consumer(self) -> Any:
        app = self.app()
        return self.inside(lambda: app.consumer)

    def _consumer_thread(self) -> Any:
        from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

        consumer = self.of(f"{DRIVER}:Consumer")
        # As faust_patches.Consumer._new_consumer_thread builds its ConsumerThread.
        return self.inside(lambda: AIOKafkaConsumerThread(consumer, loop=consumer.loop, beacon=consumer.beacon))

    def _producer(self) -> Any:
        app = self.app()
        producer = self.inside(lambda: app.producer._new_producer())  # what Producer._new_producer gets from super()
        self._closing.append(producer.stop)
        return producer

    def _client(self) -> Any:
        return self.of("aiokafka:AIOKafkaProducer").client

    def _queue(self) -> Any:
        from mode.utils.queues import FlowControlEvent, ThrowableQueue

        # As faust_patches.App.FlowControlQueue builds its AbandoningQueue.
        return self.inside(lambda: ThrowableQueue(maxsize=1, flow_control=FlowControlEvent(loop=self.loop),
                                                  clear_on_resume=True))

    def close(self) -> None:
        for stop in self._closing:
            self.loop.run_until_complete(stop())
        thread = self._built.get(f"{DRIVER}:AIOKafkaConsumerThread")
        if thread is not None:
            thread.thread_loop.close()
        self.loop.close()


@pytest.fixture(scope="module")
def specimens() -> Iterator[Specimens]:
    built = Specimens()
    try:
        yield built
    finally:
        built.close()


@pytest.mark.parametrize("private", PRIVATES, ids=operator.attrgetter("id"))
def test_library_private_is_still_there(private: Private, specimens: Specimens) -> None:
    owner = resolve(private.owner, private.patch)
    gone = (f"{private.id} is gone: faust_patches.{private.patch} relies on it ({private.why}); "
            f"recheck the patch against the new {library(private.owner)}")
    if private.on_instance:
        instance = specimens.of(private.owner)
        assert hasattr(instance, private.name), f"{gone} (checked on an instance built as Faust builds it)"
        return
    if inspect.ismodule(owner) and not hasattr(owner, private.name):
        submodule = f"{owner.__name__}.{private.name}"
        try:  # a submodule not imported yet
            importlib.import_module(submodule)
        except ModuleNotFoundError as exc:
            if exc.name != submodule:
                pytest.fail(f"cannot import {submodule} ({exc!r}): faust_patches.{private.patch} relies on it; "
                            f"recheck the patch against the new {library(private.owner)}")
        except ImportError as exc:
            pytest.fail(f"cannot import {submodule} ({exc!r}): faust_patches.{private.patch} relies on it; "
                        f"recheck the patch against the new {library(private.owner)}")
    assert hasattr(owner, private.name), gone
    if private.shape is not None:
        actual = shape(owner, private.name)
        assert actual == private.shape, (
            f"{private.id} changed: {actual!r}, faust_patches.{private.patch} was written against {private.shape!r} "
            f"({private.why}); recheck the patch against the new {library(private.owner)}")


@pytest.mark.parametrize("site", CALL_SITES, ids=lambda site: f"{dotted(site.function)}:{site.needle}")
def test_library_still_calls_what_a_patch_overrides(site: CallSite) -> None:
    function = resolve(site.function, site.patch)
    if isinstance(function, property):
        function = function.fget
    source = "".join(inspect.getsource(function).split())
    assert "".join(site.needle.split()) in source, (
        f"{dotted(site.function)} no longer does {site.needle!r}: faust_patches.{site.patch} relies on it "
        f"({site.why}); recheck the patch against the new {library(site.function)}")


@pytest.mark.parametrize(("owner", "name", "on_instance", "patch"), OWN_NAMES, ids=lambda v: str(v))
def test_the_patches_own_names_shadow_nothing(owner: str, name: str, on_instance: bool, patch: str,
                                              specimens: Specimens) -> None:
    target = specimens.of(owner) if on_instance else resolve(owner, patch)
    assert not hasattr(target, name), (
        f"{dotted(owner)}.{name} now exists: faust_patches.{patch} uses that name for its own and would shadow "
        f"it; rename it in the patch (new {library(owner)})")


def test_the_producer_client_class_can_be_swapped(specimens: Specimens) -> None:
    from aiokafka import AIOKafkaClient

    client = specimens.of("aiokafka:AIOKafkaProducer").client
    assert type(client) is AIOKafkaClient, (
        f"Faust's aiokafka producer now has a {type(client).__qualname__} client: faust_patches.Producer._new_producer "
        "sets its __class__ to ProducerClient, a subclass of AIOKafkaClient; recheck the patch against the new "
        f"{library('aiokafka')}")

    class Swapped(AIOKafkaClient):
        pass

    probe = AIOKafkaClient(loop=specimens.loop, bootstrap_servers="localhost:1")
    try:
        probe.__class__ = Swapped
    except TypeError as exc:
        pytest.fail(f"an AIOKafkaClient's __class__ can no longer be swapped for a subclass ({exc}): "
                    f"faust_patches.Producer._new_producer does it; recheck against the new {library('aiokafka')}")


def test_aiokafka_retry_backoff_is_in_seconds(specimens: Specimens) -> None:
    from aiokafka import AIOKafkaClient

    client = AIOKafkaClient(loop=specimens.loop, bootstrap_servers="localhost:1", retry_backoff_ms=250)
    assert getattr(client, "_retry_backoff", None) == 0.25, (
        "aiokafka.AIOKafkaClient._retry_backoff is no longer retry_backoff_ms in seconds: "
        "faust_patches.ProducerClient._metadata_update sleeps that long after a failed update; recheck the patch "
        f"against the new {library('aiokafka')}")


def test_faust_consumer_unacked_is_its_live_set(specimens: Specimens) -> None:
    consumer = specimens.of(f"{DRIVER}:Consumer")
    assert isinstance(consumer.unacked, MutableSet) and consumer.unacked is consumer.unacked, (
        "faust Consumer.unacked is no longer the consumer's own mutable set: faust_patches.abandon removes the "
        f"abandoned messages from it; recheck the patch against the new {library('faust')}")


def patches_tree() -> ast.Module:
    return ast.parse(PATCHES.read_text(encoding="utf-8"), filename=str(PATCHES))


def library_names(tree: ast.Module) -> dict[str, str]:
    """Local names bound by faust_patches' imports of the libraries: name -> "module" or "module:name"."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in LIBRARIES:
                    names[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in LIBRARIES:
            for alias in node.names:
                try:
                    submodule = importlib.util.find_spec(f"{node.module}.{alias.name}") is not None
                except ImportError:
                    submodule = False
                names[alias.asname or alias.name] = f"{node.module}{'.' if submodule else ':'}{alias.name}"
    return names


def owner_of(base: ast.expr, names: dict[str, str]) -> str | None:
    """The library class a base class expression of faust_patches names, as "module:Qualified.Name"."""
    head, _, rest = ast.unparse(base).partition(".")
    if head not in names:
        return None
    full = names[head]
    if not rest:
        return full
    return f"{full}.{rest}" if ":" in full else f"{full}:{rest}"


def test_every_library_name_faust_patches_uses_is_checked_here() -> None:
    tree = patches_tree()
    names = library_names(tree)
    checked = {(p.owner, p.name) for p in PRIVATES}
    own = {(owner, name) for owner, name, _, _ in OWN_NAMES}
    missing: list[str] = []

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in LIBRARIES:
            missing += [f"import {node.module}.{a.name}" for a in node.names if (node.module, a.name) not in checked]

    for cls in (node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)):
        bases = [owner for owner in (owner_of(base, names) for base in cls.bases) if owner]
        if not bases:
            continue
        defined = {n.name for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        defined |= {t.id for n in cls.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
        assigned = {n.attr for n in ast.walk(cls) if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)
                    and isinstance(n.value, ast.Name) and n.value.id == "self"}
        for name in sorted(defined | assigned):
            if not any((base, name) in checked | own for base in bases):
                missing.append(f"{cls.name}.{name} (on {', '.join(dotted(b) for b in bases)})")

    listed = {p.name for p in PRIVATES} | {name for _, name, _, _ in OWN_NAMES} | CHECKED_APART
    used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr.startswith("_")
            and (not n.attr.endswith("__") or n.attr in CHECKED_APART)}
    missing += [f"private attribute {name}" for name in sorted(used - listed)]

    assert not missing, (
        f"{PATCHES.name} relies on library names this test does not check: {'; '.join(missing)}. Add each to PRIVATES "
        "(library object, name, the patch, why) or, for a name of the patch's own, to OWN_NAMES")
