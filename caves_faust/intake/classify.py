"""Triage of a batch read from the sales topic: valid events accepted, invalid ones dead letters, counted once per
batch. CPU only, no I/O: the intake runs it on the next batch while the previous one is being written."""

from __future__ import annotations

import time
from collections import Counter
from typing import Sequence

from faust.types import EventT

from caves_faust.events.batch import Accepted, Classified, distinct
from caves_faust.events.letters import DeadLetter
from caves_faust.events.validation import InvalidEvent, validate
from caves_faust.faust_patches import shed_evaluated_fields
from caves_faust.observability import metrics

session_stats = metrics.SessionStats()


def classify(events: Sequence[EventT], topic_id: str | None = None) -> Classified:
    """Validate each distinct event of a batch (read from the life of the sales topic `topic_id`); counted once
    per batch in the metrics and the session totals (a labelled counter's lookup per event was a measurable share
    of the event loop)."""
    started = time.perf_counter()
    accepted: list[Accepted] = []
    letters: list[DeadLetter] = []
    distinct_events = distinct(events)
    sizes = [len(e.message.value or b"") for e in distinct_events]
    metrics.event_size.observe_many(sizes)
    for event in distinct_events:
        try:
            valid = validate(event.message.value)
        except InvalidEvent as error:
            letters.append(DeadLetter(event, error, topic_id=topic_id))
            continue
        shed_evaluated_fields(valid.event)  # it waits in memory until its batch is committed
        accepted.append(Accepted(event, valid, topic_id=topic_id))
    valid_types = Counter(a.valid.event.event_type for a in accepted)
    for event_type, count in valid_types.items():
        metrics.events_consumed.labels(event_type=event_type, status="valid").inc(count)
    if letters:
        metrics.events_consumed.labels(event_type="INVALID", status="invalid").inc(len(letters))
    session_stats.count(valid_types + Counter(f"invalid:{letter.error.error_type}" for letter in letters))
    return Classified(events, accepted, letters, time.perf_counter() - started, topic_id, sum(sizes))

