"""The stock mails' sender: the outbox entries of the stock values this worker owns, sent over SMTP, then marked.

The crossing is decided in the stock value (stock/locations.py), in the same changelog write as the stock, and the
mail waits there (the value's outbox) until it is known sent. This service, on each worker:

1. every `SCAN_SECONDS`, once the tables are complete, reads the mails-sent marks up to their end (a group-less
   read of `<app>-mails-sent`, every partition: marks a worker wrote before a crash or a rebalance included), then
   queues the outbox entries of the values it owns that no mark names;
2. sends each queued mail, retrying through an SMTP outage with capped backoff (the queue is bounded by
   `QUEUE_BOUND`; what does not fit waits in the outbox for a later scan, so an outage delays mails, never loses
   them);
3. once the server accepted it, writes its mark to `<app>-mails-sent` and waits until the broker has it; the
   `mails_sent` agent then clears the entry from the value.

Only the worker holding a product's partition sends its mails: ownership is checked before every try, so a mail
queued before a rebalance is left to the new owner.

The guarantee: a decided mail is sent at least once (it leaves the outbox only after its mark), and at most once
except when a worker dies, or loses the product's partition, after its last ownership check and before the mark
reached the broker, with the SMTP server having accepted the mail (a fraction of a second per mail): the next
owner then sends it again, with the same Message-ID. SMTP has no idempotency, so no design can close that window.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from zoneinfo import ZoneInfo

from aiokafka import AIOKafkaConsumer, TopicPartition
from mode import Service

from caves_faust.faust_app import app, settings
from caves_faust.kafka.topic_log import group_less_consumer, log_bounds, records
from caves_faust.mail import smtp
from caves_faust.mail.messages import stock_mail
from caves_faust.observability import metrics
from caves_faust.observability.logs import one_line
from caves_faust.sink.retry import RetryPolicy, SinkStopped
from caves_faust.stock.tables import MailsSent, mails_sent_topic, stock_table, tables_ready

log = logging.getLogger(__name__)

SCAN_SECONDS = 2.0
QUEUE_BOUND = 100
SMTP_RETRY = RetryPolicy(max_seconds=10.0, first_seconds=1.0)

Ident = tuple[str, int]  # (product id, the entry's number in the product's value)


class Disowned(Exception):
    """The product's partition went to another worker since the mail was queued: the new owner sends it."""


def owns(product_id: str) -> bool:
    """Whether this worker holds the product's stock partition now (Faust's routing of table keys)."""
    try:
        owner = app.router.key_store(stock_table.name, product_id)
    except Exception:  # no assignment yet, or being rebalanced
        return False
    return str(owner).rstrip("/") == str(app.conf.canonical_url).rstrip("/")


class MarksLog:
    """The mails-sent marks read so far, from every partition: which entries are known sent."""

    def __init__(self) -> None:
        self.sent: set[Ident] = set()
        self.positions: dict[TopicPartition, int] = {}

    async def catch_up(self, consumer: AIOKafkaConsumer) -> None:
        topic = mails_sent_topic.get_topic_name()
        tps = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        bounds = await log_bounds(consumer, tps)
        for tp in tps:
            start, end = bounds[tp]
            async for record in records(consumer, tp, max(start, self.positions.get(tp, 0)), end):
                mark = MailsSent.loads(record.value)
                self.sent.update((mark.product_id, number) for number in mark.numbers)
            self.positions[tp] = end


@app.service
class StockMailSender(Service):
    """Scans the owned stock values' outboxes and sends their mails (nothing when ALERT_EMAIL_TO is unset)."""

    def __post_init__(self) -> None:
        self.marks = MarksLog()
        self.queue: asyncio.Queue[tuple[str, dict]] = asyncio.Queue(maxsize=QUEUE_BOUND)
        self.queued: set[Ident] = set()
        self.zone = ZoneInfo(settings.shop_timezone)
        self.resources = AsyncExitStack()
        self.consumer: AIOKafkaConsumer | None = None

    async def on_stop(self) -> None:
        await self.resources.aclose()

    @Service.task
    async def _scanning(self) -> None:
        if not settings.mail_on:
            return
        while not self.should_stop:
            await self.sleep(SCAN_SECONDS)
            try:
                await self.scan()
            except Exception as exc:  # the broker away: the entries wait in the outbox for the next scan
                log.warning("mail: outbox scan failed, retrying: %s", one_line(exc))

    async def scan(self) -> None:
        if not tables_ready():
            return
        if self.consumer is None:
            self.consumer = await self.resources.enter_async_context(group_less_consumer(settings.kafka_bootstrap))
        await self.marks.catch_up(self.consumer)
        waiting = 0
        for product_id, value in list(stock_table.items()):
            if value.outbox and not owns(product_id):
                continue  # a standby copy (the memory store lists them): its owner sends
            for mail in value.outbox:
                ident = (product_id, mail["number"])
                if ident in self.marks.sent:
                    continue
                waiting += 1
                if ident not in self.queued and not self.queue.full():
                    self.queued.add(ident)
                    self.queue.put_nowait((product_id, mail))
        metrics.mails_waiting.set(waiting)

    @Service.task
    async def _sending(self) -> None:
        if not settings.mail_on:
            return
        while not self.should_stop:
            product_id, mail = await self.queue.get()
            try:
                await self.deliver(product_id, mail)
            except Disowned:
                log.info("mail: product %s moved to another worker, which sends its mail", product_id)
            except SinkStopped:
                return  # shutting down: the entry stays in the outbox
            finally:
                self.queued.discard((product_id, mail["number"]))

    async def deliver(self, product_id: str, mail: dict) -> None:
        message = stock_mail(product_id, mail, self.zone, settings.app_id)

        async def attempt() -> None:
            if not owns(product_id):  # checked before every try: an outage can outlast a rebalance
                raise Disowned(product_id)
            await asyncio.to_thread(smtp.send, settings, message)

        await SMTP_RETRY.call("mail server", attempt, smtp.SMTP_ERRORS, reason="smtp",
                              stopping=lambda: self.should_stop,
                              counted=lambda reason: metrics.mails_failing.inc())
        metrics.mails_sent.labels(kind=mail["kind"]).inc()
        log.info("mail: %r sent to %d recipient(s)", message["Subject"], len(settings.alert_email_to))
        mark = MailsSent(product_id=product_id, numbers=[mail["number"]])
        await SMTP_RETRY.call("mails-sent topic", lambda: self._mark(mark), (Exception,), reason="kafka",
                              stopping=lambda: self.should_stop, counted=lambda reason: None)
        self.marks.sent.add((product_id, mail["number"]))

    async def _mark(self, mark: MailsSent) -> None:
        delivery = await mails_sent_topic.send(key=mark.product_id, value=mark)
        await delivery
