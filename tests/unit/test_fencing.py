"""When a partition fenced out of its channel is given up (another worker owns it) or taken back (the writer that
reopened the channel was a zombie), in streaming mode."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any, cast

from caves_faust.sink.channels import StreamingWriter
from caves_faust.sink.retry import RetryPolicy
from caves_faust.sink.streaming import StreamingSink
from caves_faust.snowflake.streaming_auth import Credentials
from caves_faust.snowflake.streaming_client import StreamingClient


def sink(owned: set[int], rebalancing: bool = False) -> StreamingSink:
    client = StreamingClient(Credentials("http://127.0.0.1:1", "http", None), "DB", "RAW_DATA", "T-STREAMING", 1)
    no_letters = cast(Any, SimpleNamespace(forget=lambda partitions: None))  # this rule sends none
    return StreamingSink(StreamingWriter(client, "app_topic", 1), StreamingWriter(client, "app_topic", 1),
                         cast(Any, None), no_letters, "topic",
                         RetryPolicy(1), stopping=lambda: False, owned=lambda: owned,
                         rebalancing=lambda: rebalancing, kafka_committed=lambda partition: None,
                         fence_wait_seconds=30, what_to_check="")


def test_a_fenced_partition_is_given_up_once_it_is_not_ours_or_a_rebalance_touches_it():
    now = time.monotonic()
    quiet = sink(owned={1, 2, 3})
    quiet.forget({3})  # revoked or assigned since partition 3 was fenced out
    held = {0: (now, 0), 1: (now, 0), 3: (now, 0)}
    lost: set[int] = set()

    quiet._settle_fenced(quiet.rows, held, lost)

    assert lost == {0, 3} and held == {1: (now, 0)}  # 0: another worker's; 1: still ours, waiting
    rebalancing = sink(owned={1}, rebalancing=True)
    rebalancing._settle_fenced(rebalancing.rows, held, lost)
    assert lost == {0, 1, 3} and held == {}


def test_a_fenced_partition_still_ours_after_a_session_timeout_is_taken_back():
    owner = sink(owned={4})
    owner.rows._fenced.add(4)
    held = {4: (time.monotonic() - 31, 0)}
    lost: set[int] = set()

    owner._settle_fenced(owner.rows, held, lost)

    assert held == {} and lost == set()
    assert 4 not in owner.rows._fenced  # its channel is reopened at the next write, fencing the zombie out
