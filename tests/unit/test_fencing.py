"""When a partition fenced out of its channel is given up (another worker owns it) or taken back (the writer that
reopened the channel was a zombie), in streaming mode."""

from __future__ import annotations

import time

from caves_faust.sink.channels import StreamingWriter
from caves_faust.sink.fencing import Fencing
from caves_faust.snowflake.streaming_auth import Credentials
from caves_faust.snowflake.streaming_client import StreamingClient


def writer() -> StreamingWriter:
    client = StreamingClient(Credentials("http://127.0.0.1:1", "http", None), "DB", "RAW_DATA", "T-STREAMING", 1)
    return StreamingWriter(client, "app_topic", 1)


def fencing(owned: set[int], rebalancing: bool = False) -> Fencing:
    return Fencing(owned=lambda: owned, rebalancing=lambda: rebalancing, wait_seconds=30)


def test_a_fenced_partition_is_given_up_once_it_is_not_ours_or_a_rebalance_touches_it():
    now = time.monotonic()
    quiet = fencing(owned={1, 2, 3})
    quiet.moved({3})  # revoked or assigned since partition 3 was fenced out
    held = {0: (now, 0), 1: (now, 0), 3: (now, 0)}
    lost: set[int] = set()

    quiet.settle(writer(), held, lost)

    assert lost == {0, 3} and held == {1: (now, 0)}  # 0: another worker's; 1: still ours, waiting
    fencing(owned={1}, rebalancing=True).settle(writer(), held, lost)
    assert lost == {0, 1, 3} and held == {}


def test_a_fenced_partition_still_ours_after_a_session_timeout_is_taken_back():
    rows = writer()
    rows._fenced.add(4)
    held = {4: (time.monotonic() - 31, 0)}
    lost: set[int] = set()

    fencing(owned={4}).settle(rows, held, lost)

    assert held == {} and lost == set()
