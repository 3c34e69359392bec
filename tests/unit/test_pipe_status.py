"""A pipe's bulk channel status is shared by every batch waiting for its commit, at a pace: however many wait, one
request at a time, at most one every `pace` seconds, and each waiter's answer comes from a request sent after it
asked (Snowflake's limit is 10 requests a second per channel)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import pytest

from caves_faust.sink.channels import PipeStatus
from caves_faust.snowflake.streaming_client import ChannelStatus, StreamingUnavailable

pytestmark = pytest.mark.timeout(10)


class CountingClient:
    """Answers every channel named with its number of requests so far as committed token; `hold` keeps the
    answer back until released; `failing` requests raise."""

    def __init__(self) -> None:
        self.requests: list[tuple[float, list[str]]] = []
        self.hold = asyncio.Event()
        self.hold.set()
        self.failing = 0

    async def statuses(self, names: list[str]) -> dict[str, ChannelStatus]:
        self.requests.append((time.monotonic(), names))
        await self.hold.wait()
        if self.failing:
            self.failing -= 1
            raise StreamingUnavailable("HTTP 503")
        return {name: ChannelStatus(name, str(len(self.requests)), 0, None, None) for name in names}


def shared(client: CountingClient, pace: float) -> PipeStatus:
    return PipeStatus(cast(Any, client), pace)


async def test_batches_waiting_together_share_one_request_naming_all_their_channels():
    client = CountingClient()
    status = shared(client, pace=0)
    client.hold.clear()
    first = asyncio.create_task(status.after({"C_0"}))
    await asyncio.sleep(0.01)  # its request is out
    later = [asyncio.create_task(status.after({f"C_{n}"})) for n in (1, 2, 3)]
    await asyncio.sleep(0.01)
    client.hold.set()
    answers = await asyncio.gather(first, *later)

    # The first request was sent before the others asked; one more answers all three of them.
    assert [sorted(names) for _, names in client.requests] == [["C_0"], ["C_1", "C_2", "C_3"]]
    assert [a[f"C_{n}"].committed_offset_token for n, a in enumerate(answers)] == ["1", "2", "2", "2"]


async def test_requests_are_never_closer_than_the_pace_whoever_asks():
    client = CountingClient()
    status = shared(client, pace=0.2)
    for _ in range(4):
        await asyncio.gather(status.after({"C_0"}), status.after({"C_1"}))

    sent = [at for at, _ in client.requests]
    assert len(sent) == 4
    assert all(later - earlier >= 0.19 for earlier, later in zip(sent, sent[1:], strict=False)), sent


async def test_a_failed_request_fails_its_waiters_and_the_next_one_names_their_channels_again():
    client = CountingClient()
    status = shared(client, pace=0)
    client.failing = 1
    with pytest.raises(StreamingUnavailable):
        await status.after({"C_0"})
    assert (await status.after({"C_1"}))["C_1"].committed_offset_token == "2"
    assert sorted(client.requests[-1][1]) == ["C_0", "C_1"]
