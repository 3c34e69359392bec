"""Which life of the sales topic the worker reads: the topic's id (`kafka/topic_ids.py`), looked up again after each
assignment, before the next batch is classified: a topic deleted and created again under the same name has a new
id, and its offsets restart at 0 (the sink's marks, the channels' tokens, the DLQ tail and the stock's marks are
each of one life)."""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from aiokafka.errors import KafkaError

from caves_faust.kafka.topic_ids import topic_ids
from caves_faust.sink.retry import RetryPolicy

log = logging.getLogger(__name__)

# What a failed look-up raises: retried, as the batch waits for it.
LOOKUP_ERRORS = (KafkaError, OSError, asyncio.TimeoutError)


class TopicLife:
    def __init__(self, bootstrap: str, topic: str, retry: RetryPolicy, stopping: Callable[[], bool]):
        self.bootstrap = bootstrap
        self.topic = topic
        self.retry = retry
        self.stopping = stopping
        self.topic_id: str | None = None
        self.stale = True  # looked up again before the next batch (at start, after each assignment)
        self._without_ids = False  # the broker gives no topic ids (said once)

    async def current(self) -> str | None:
        """The topic's id now (None when the broker gives none); retries until the broker answers, never past
        shutdown (then SinkStopped): no batch is stored under a life that is not known."""
        if self.stale and not self._without_ids:
            ids = await self.retry.call(f"Kafka (the id of topic {self.topic})",
                                        lambda: topic_ids(self.bootstrap, [self.topic]), LOOKUP_ERRORS,
                                        reason="topic_id", stopping=self.stopping, counted=lambda reason: None)
            if self.topic in ids:  # absent: deleted just now; its next assignment looks it up again
                self._learn(ids[self.topic])
        self.stale = False
        return self.topic_id

    def _learn(self, topic_id: str | None) -> None:
        if topic_id is None and not self._without_ids:
            self._without_ids = True
            log.warning("intake: the broker gives no id for topic %s (Kafka before 2.8?): a topic deleted and "
                        "created again under that name cannot be told from the old one", self.topic)
        elif topic_id != self.topic_id:
            log.info("intake: topic %s has id %s", self.topic, topic_id)
        self.topic_id = topic_id
