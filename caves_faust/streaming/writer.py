"""Exactly once into a table through Snowpipe Streaming: one channel per source partition, named after the consumer
group, the topic and the partition, whose offset token is the Kafka offset of the last row appended.

- `committed` opens a partition's channel (fencing out any previous writer) and reads what it has committed: what
  that token covers is never appended again, whatever crashed, restarted or rebalanced before.
- `write` appends each partition's rows in offset order and returns only once every channel's committed token
  covers them: only then may their events be acknowledged to Kafka.
- A channel reopened by someone else refuses our appends: its partition is reported fenced out and left alone
  until it is assigned to us again (`forget`), never retried as if the service were down.
- After an outage or a commit that does not come, what was in flight may or may not be committed: the caller
  `reset`s, which reopens every channel at its next use and reads its token again.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field

from caves_faust import metrics
from caves_faust.streaming.channels import (
    MAX_REQUEST_BYTES,
    ChannelFenced,
    OpenChannel,
    StreamingClient,
    StreamingUnavailable,
)

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1  # how often a write asks whether its channels committed (the embedded one commits in ~1 s)


@dataclass(frozen=True)
class StreamRow:
    partition: int
    offset: int
    line: str  # one JSON object, the row keyed by column name (no newline)


@dataclass
class Written:
    """What a write did: rows appended and committed, partitions fenced out, and per partition the rows the
    service counted as errors (`rows_error_count` moved) with its last error message."""

    rows: int = 0
    uncompressed_bytes: int = 0
    fenced: set[int] = field(default_factory=set)
    errors: dict[int, tuple[int, str]] = field(default_factory=dict)


@dataclass
class PartitionChannel:
    channel: OpenChannel
    committed: int | None
    error_count: int


class StreamingWriter:
    def __init__(self, client: StreamingClient, channel_prefix: str, commit_timeout_seconds: float):
        self.client = client
        self.channel_prefix = re.sub(r"[^A-Z0-9_]", "_", channel_prefix.upper())
        self.commit_timeout_seconds = commit_timeout_seconds
        self._channels: dict[int, PartitionChannel] = {}
        self._fenced: set[int] = set()

    def channel_name(self, partition: int) -> str:
        return f"{self.channel_prefix}_{partition}"

    async def committed(self, partitions: set[int]) -> dict[int, int | None]:
        """partition -> highest offset its channel has committed (None: none yet), for the partitions not fenced
        out; channels not open yet are opened, which fences out their previous writer."""
        for partition in sorted(partitions - self._channels.keys() - self._fenced):
            channel, status = await self.client.open(self.channel_name(partition))
            token = status.committed_offset_token
            self._channels[partition] = PartitionChannel(channel, None if token is None else int(token),
                                                         status.rows_error_count)
        return {p: self._channels[p].committed for p in partitions if p in self._channels}

    async def write(self, rows: list[StreamRow]) -> Written:
        """Append the rows (each partition's in offset order, above its committed offset) and wait for their
        commit. Raises StreamingUnavailable when the service fails or the commit does not come in time."""
        written = Written()
        appended: dict[int, int] = {}  # partition -> end offset token appended
        parts = _by_partition(rows)
        for partition, part in parts.items():
            if partition in self._fenced:
                written.fenced.add(partition)
                continue
            state = self._channels[partition]
            try:
                for chunk in _chunks(part):
                    body = "".join(r.line + "\n" for r in chunk).encode()
                    await self.client.append(state.channel, body, str(chunk[0].offset), str(chunk[-1].offset))
                    written.uncompressed_bytes += len(body)
                    metrics.streaming_bytes.inc(len(body))
            except ChannelFenced as exc:
                log.warning("streaming: channel %s fenced out: %s", state.channel.name, exc)
                self.fence(partition)
                written.fenced.add(partition)
                continue
            appended[partition] = part[-1].offset
        await self._until_committed(appended, written)
        written.rows = sum(len(parts[p]) for p in appended if p not in written.fenced)
        return written

    def fence(self, partition: int) -> None:
        self._channels.pop(partition, None)
        self._fenced.add(partition)

    def forget(self, partitions: set[int]) -> None:
        """These partitions were revoked or assigned: read their channels again before writing them."""
        for partition in partitions:
            self._channels.pop(partition, None)
            self._fenced.discard(partition)

    def reset(self) -> None:
        """After an outage: reopen every channel (not the fenced ones) and read its committed token again."""
        self._channels.clear()

    async def _until_committed(self, appended: dict[int, int], written: Written) -> None:
        deadline = time.monotonic() + self.commit_timeout_seconds
        waiting = dict(appended)
        while waiting:
            for partition in [p for p in waiting if p not in self._channels]:  # forgotten meanwhile: a rebalance
                written.fenced.add(partition)
                del waiting[partition]
            if not waiting:
                return
            names = {self.channel_name(p): p for p in waiting}
            for name, status in (await self.client.statuses(list(names))).items():
                partition = names[name]
                token = status.committed_offset_token
                if token is None or int(token) < waiting[partition]:
                    continue
                state = self._channels.get(partition)
                if state is None:  # forgotten while we asked: handled at the next round
                    continue
                if status.rows_error_count > state.error_count:
                    written.errors[partition] = (status.rows_error_count - state.error_count,
                                                 status.last_error_message or "")
                state.committed, state.error_count = int(token), status.rows_error_count
                del waiting[partition]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise StreamingUnavailable(f"channels {sorted(names)} did not commit within "
                                           f"{self.commit_timeout_seconds:.0f}s")
            await asyncio.sleep(POLL_SECONDS)


def _by_partition(rows: list[StreamRow]) -> dict[int, list[StreamRow]]:
    parts: dict[int, list[StreamRow]] = {}
    for row in rows:
        parts.setdefault(row.partition, []).append(row)
    return {p: sorted(part, key=lambda r: r.offset) for p, part in parts.items()}


def _chunks(rows: list[StreamRow]) -> list[list[StreamRow]]:
    """Rows cut into appends of at most MAX_REQUEST_BYTES of NDJSON before compression (so also after it)."""
    chunks: list[list[StreamRow]] = [[]]
    size = 0
    for row in rows:
        length = len(row.line.encode()) + 1
        if chunks[-1] and size + length > MAX_REQUEST_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(row)
        size += length
    return chunks
