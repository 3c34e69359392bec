"""A shop closed for a month: Snowpipe Streaming channels unused for 30 days expire with their committed offset
tokens; the worker that opens them again, its consumer group's offsets older than what the tables hold, neither
doubles nor skips an event."""

from __future__ import annotations

import pytest

from tests.delivery import Sent, assert_exactly_once, commit_everything, mixed_payloads

pytestmark = pytest.mark.integration


def test_channels_expired_and_group_offsets_reset_neither_double_nor_skip(pipeline, start_worker, stack):
    worker = start_worker(SINK_MODE="streaming")
    sent = Sent()
    sent.produce(pipeline, mixed_payloads(800))
    assert_exactly_once(pipeline, sent, worker)
    commit_everything(pipeline, sent)
    assert worker.terminate() == 0

    expired = stack.expire_channels(pipeline.database)  # RAW_EVENTS_STREAM's and DLQ_EVENTS's
    assert len(expired) > pipeline.partitions, expired
    pipeline.commit_group(lambda partition, end: 0)  # older than every channel: all of it comes again

    again = start_worker(SINK_MODE="streaming")
    sent.produce(pipeline, mixed_payloads(400, start=800))
    assert_exactly_once(pipeline, sent, again)
    commit_everything(pipeline, sent)  # the replays all read: none was stored twice since
    print(assert_exactly_once(pipeline, sent, again))
    assert "opened without a committed offset token" in again.log_text()

