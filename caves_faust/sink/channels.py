"""Exactly once into a table through Snowpipe Streaming: one channel per source partition, named after the consumer
group, the topic and the partition, whose offset token is the Kafka offset of the last row appended.

- `committed` opens a partition's channel (fencing out any previous writer) and reads what it has committed: what
  that token covers is never appended again, whatever crashed, restarted or rebalanced before.
- `append` hands each partition's rows to its channel in offset order; `until_committed` returns once every
  channel's committed token covers them: only then may their events be acknowledged to Kafka. A batch may be
  appended while the one before waits for its commit (`turn`, `epoch`): a channel commits in the order it was
  given, so that is safe as long as nothing reopened or dropped a channel in between.
- A channel reopened by someone else refuses our appends: its partition is reported fenced out and left alone
  until it is assigned to us again (`forget`), never retried as if the service were down.
- A writer that died after a commit, before dead-lettering the rows the service refused in it, left them in
  neither place: the rows a channel committed before it was opened here, up to its last error
  (`refused_before_open`), are looked up by the batches that replay them.
- An offset token names the life of the topic it counts in (`<topic id>/<offset>`; a bare offset when the broker
  gives no topic ids): a channel whose token is of a topic since deleted and created again has committed nothing
  of the new one, whose offsets restart at 0. A bare token, written before topic ids were kept, is taken for the
  life the writer is given.
- After an outage or a commit that does not come, what was in flight may or may not be committed: the caller
  `reset`s, which reopens every channel at its next use and reads its token again; a wait on rows appended before
  a reset raises `StreamingUnavailable` (they may be gone).
- A channel that opens without a committed token is new, or expired (30 days unused) and its token with it: the
  caller's `table_mark` says the highest offset the table holds for its partition, and that is the channel's
  committed offset, so a Kafka replay of stored events is not appended again.
- Every batch waiting for its commit shares the pipe's bulk status requests (`PipeStatus`), at most one every
  STATUS_POLL_SECONDS, within Snowflake's 10 requests a second per channel.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from caves_faust.observability import metrics
from caves_faust.snowflake.streaming_client import (
    MAX_REQUEST_BYTES,
    ChannelFenced,
    ChannelStatus,
    OpenChannel,
    StreamingClient,
    StreamingUnavailable,
)

log = logging.getLogger(__name__)

# How often a pipe's channels are asked what they committed, whoever waits: 2 requests a second per pipe, a fifth
# of the limitations page's 10 requests a second per channel (a bulk request may count against each channel it
# names: not documented), leaving the rest to appends; a commit takes ~1 s (embedded) to 5-10 s (documented).
STATUS_POLL_SECONDS = 0.5

TableMark = Callable[[int], Awaitable[int | None]]  # partition -> the highest offset its table holds (None: none)


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
    error_count: int  # the service's error count, up to what the batches appended here accounted for
    errors_seen: int  # the highest error count the service reported
    awaiting: int = 0  # batches appended here whose errors are not accounted for yet
    appended: int = -1  # the last offset appended through this channel (-1: none)
    # Rows the channel committed before it was opened here, up to the last one the service refused (None: none
    # refused): some may never have been dead-lettered, if the writer that appended them died.
    refused_upto: int | None = None


@dataclass
class Appended:
    """A batch's rows handed to their channels, not known to be committed yet."""

    generation: int  # the writer's resets before the append
    ends: dict[int, int] = field(default_factory=dict)  # partition -> last offset appended
    counts: dict[int, int] = field(default_factory=dict)  # partition -> rows appended
    states: dict[int, PartitionChannel] = field(default_factory=dict)  # the channels appended to
    written: Written = field(default_factory=Written)


class PipeStatus:
    """A pipe's bulk channel status, asked at most once every `pace` seconds however many batches wait: a waiter
    gets the answer of a request sent after it asked, which names its channels (Snowflake's Openflow client also
    shares one bulk request per pipe among its waiters, keeping answers 2 s)."""

    def __init__(self, client: StreamingClient, pace: float):
        self.client = client
        self.pace = pace
        self._lock = asyncio.Lock()
        self._wanted: set[str] = set()  # named by waiters since the last request was sent
        self._sent = -math.inf  # when the last answered request was sent
        self._named: set[str] = set()  # the channels it named
        self._answers: dict[str, ChannelStatus] = {}

    async def after(self, names: set[str]) -> dict[str, ChannelStatus]:
        """The statuses of `names` (those the service knows), as a request sent after this call answered them."""
        asked = time.monotonic()
        self._wanted |= names
        async with self._lock:
            if not (self._sent >= asked and names <= self._named):
                await asyncio.sleep(max(0.0, self._sent + self.pace - time.monotonic()))
                naming, self._wanted = self._wanted | names, set()
                sent = time.monotonic()
                try:
                    self._answers = await self.client.statuses(sorted(naming))
                except BaseException:
                    self._wanted |= naming  # still wanted by the others waiting
                    raise
                self._sent, self._named = sent, naming
            return {name: self._answers[name] for name in names if name in self._answers}


class StreamingWriter:
    def __init__(self, client: StreamingClient, channel_prefix: str, commit_timeout_seconds: float,
                 status_poll_seconds: float | None = None):
        self.client = client
        self.channel_prefix = re.sub(r"[^A-Z0-9_]", "_", channel_prefix.upper())
        self.commit_timeout_seconds = commit_timeout_seconds
        self.status = PipeStatus(client, STATUS_POLL_SECONDS if status_poll_seconds is None else status_poll_seconds)
        self._channels: dict[int, PartitionChannel] = {}
        self._fenced: set[int] = set()
        self.turn = asyncio.Condition()  # one batch appends at a time, in batch order (the sink sees to the order)
        self.generation = 0  # resets: rows appended before one may be gone
        self.epoch = 0  # resets, forgotten and fenced partitions: a batch appended before one is not followed
        self.topic_id: str | None = None  # the life of the topic the tokens count in (events.received.Received)
        self.other_lives: set[str] = set()  # lives of the topic other than this one that opened channels' tokens name

    def live(self, topic_id: str | None) -> None:
        """Write the tokens of this life of the topic from now on: when it is a new one, every channel is read again
        (what their tokens cover is another topic's)."""
        if topic_id != self.topic_id:
            self.topic_id = topic_id
            self.reset()

    def channel_name(self, partition: int) -> str:
        return f"{self.channel_prefix}_{partition}"

    async def committed(self, partitions: set[int], table_mark: TableMark | None = None) -> dict[int, int | None]:
        """partition -> highest offset its channel has committed (None: none yet), for the partitions not fenced
        out; channels not open yet are opened, which fences out their previous writer. A channel that opens
        without a token (new, or expired with it) has committed what `table_mark` says the table holds."""
        for partition in sorted(partitions - self._channels.keys() - self._fenced):
            name = self.channel_name(partition)
            channel, status = await self.client.open(name)
            mark = offset_of(status.committed_offset_token, self.topic_id)
            if mark is None and status.committed_offset_token:
                self.other_lives.add(status.committed_offset_token.rpartition("/")[0])
            # "" when nothing was refused, in Snowflake's answers
            bound = offset_of(status.last_error_offset_upper_bound, self.topic_id)
            refused_upto = (min(bound, mark) if status.rows_error_count and bound is not None
                            and mark is not None else None)
            if mark is None and table_mark is not None:
                mark = await table_mark(partition)
                if mark is not None:
                    log.warning("streaming: channel %s opened without a committed offset token of this topic's life "
                                "(expired after 30 days unused, or dropped), while its table holds offsets up to %d "
                                "of partition %d: resuming after it", name, mark, partition)
            self._channels[partition] = PartitionChannel(channel, mark, status.rows_error_count,
                                                         status.rows_error_count, refused_upto=refused_upto)
        return {p: self._channels[p].committed for p in partitions if p in self._channels}

    def refused_before_open(self, partitions: set[int]) -> dict[int, int]:
        """partition -> the offset up to which rows its channel committed before it was opened here may include
        refused ones nobody dead-lettered, for the open channels that have such rows."""
        return {p: state.refused_upto for p in partitions
                if (state := self._channels.get(p)) is not None and state.refused_upto is not None}

    def handed_over(self, committed: dict[int, int | None]) -> dict[int, int]:
        """Per partition of `committed` (as `committed` returned it), the last offset committed or appended since
        the channel was opened (-1: none): rows at or below it are stored or on their way (a Kafka replay of them,
        in the batch after the one appending them, must not be appended again)."""
        return {p: max(-1 if token is None else token, self._channels[p].appended) for p, token in committed.items()}

    async def append(self, rows: list[StreamRow]) -> Appended:
        """Hand the rows to their channels (each partition's in offset order, above its committed offset); a
        partition whose channel is fenced out or was forgotten since `committed` is reported fenced. Raises
        StreamingUnavailable when the service fails."""
        appended = Appended(self.generation)
        for partition, part in _by_partition(rows).items():
            state = self._channels.get(partition)
            if state is None:
                appended.written.fenced.add(partition)
                continue
            try:
                for chunk, body in _chunks(part):
                    await self.client.append(state.channel, body, token_of(self.topic_id, chunk[0].offset),
                                             token_of(self.topic_id, chunk[-1].offset))
                    appended.written.uncompressed_bytes += len(body)
                    metrics.streaming_bytes.inc(len(body))
            except ChannelFenced as exc:
                log.warning("streaming: channel %s fenced out: %s", state.channel.name, exc)
                self.fence(partition)
                appended.written.fenced.add(partition)
                continue
            appended.ends[partition], appended.counts[partition] = part[-1].offset, len(part)
            appended.states[partition] = state
            state.appended = part[-1].offset
            state.awaiting += 1
        return appended

    async def until_committed(self, appended: Appended) -> Written:
        """Wait until every channel's committed token covers the rows appended; per partition, the rows the
        service counted as errors since the last accounted for (some may be a later batch's: `accounted`).
        Raises StreamingUnavailable when the commit does not come in time or the writer was reset since."""
        written = appended.written
        deadline = time.monotonic() + self.commit_timeout_seconds
        waiting = dict(appended.ends)
        while True:
            if self.generation != appended.generation:
                raise StreamingUnavailable("channels reopened after an outage before the rows were seen committed")
            for partition in [p for p in waiting if self._channels.get(p) is not appended.states[p]]:
                written.fenced.add(partition)  # forgotten meanwhile (a rebalance) or fenced out
                del waiting[partition]
            if not waiting:
                break
            names = {self.channel_name(p): p for p in waiting}
            statuses = await self.status.after(set(names))
            for name, status in statuses.items():
                partition = names[name]
                state = appended.states[partition]
                token = offset_of(status.committed_offset_token, self.topic_id)
                if token is None or token < waiting[partition] or self._channels.get(partition) is not state:
                    continue  # not yet, or forgotten while we asked: handled at the next round
                state.committed = max(token, state.committed if state.committed is not None else -1)
                state.errors_seen = max(state.errors_seen, status.rows_error_count)
                if status.rows_error_count > state.error_count:
                    written.errors[partition] = (status.rows_error_count - state.error_count,
                                                 status.last_error_message or "")
                del waiting[partition]
            if not waiting:
                break
            if time.monotonic() > deadline:
                raise StreamingUnavailable(f"channels {sorted(names)} did not commit within "
                                           f"{self.commit_timeout_seconds:.0f}s")
        written.rows = sum(appended.counts[p] for p in appended.ends if p not in written.fenced)
        return written

    def accounted(self, appended: Appended, errors: dict[int, int]) -> None:
        """The caller found `errors` (partition -> rows) of the errors reported among the batch's own rows. Once
        no other batch awaits on a channel, every error it reported is accounted for."""
        for partition, state in appended.states.items():
            if self._channels.get(partition) is not state:
                continue
            state.awaiting -= 1
            found = state.error_count + errors.get(partition, 0)
            state.error_count = min(found, state.errors_seen) if state.awaiting else state.errors_seen

    def fence(self, partition: int) -> None:
        self._channels.pop(partition, None)
        self._fenced.add(partition)
        self.epoch += 1

    def forget(self, partitions: set[int]) -> None:
        """These partitions were revoked or assigned: read their channels again before writing them."""
        for partition in partitions:
            self._channels.pop(partition, None)
            self._fenced.discard(partition)
        self.epoch += 1

    def reset(self) -> None:
        """After an outage: reopen every channel (not the fenced ones) and read its committed token again."""
        self._channels.clear()
        self.generation += 1
        self.epoch += 1


def token_of(topic_id: str | None, offset: int) -> str:
    """The offset token of a row: its Kafka offset, in the life of its topic."""
    return str(offset) if topic_id is None else f"{topic_id}/{offset}"


def offset_of(token: str | None, topic_id: str | None) -> int | None:
    """The offset a token names in this life of the topic; None for no token, or one of another life."""
    if not token:
        return None
    life, _, offset = token.rpartition("/")
    if not offset.isdigit():
        return None
    if not life:
        return int(offset)  # written before topic ids were kept: taken for this life
    return int(offset) if life == topic_id else None


def _by_partition(rows: list[StreamRow]) -> dict[int, list[StreamRow]]:
    parts: dict[int, list[StreamRow]] = {}
    for row in rows:
        parts.setdefault(row.partition, []).append(row)
    return {p: sorted(part, key=lambda r: r.offset) for p, part in parts.items()}


def _chunks(rows: list[StreamRow]) -> list[tuple[list[StreamRow], bytes]]:
    """Rows cut into appends of at most MAX_REQUEST_BYTES of NDJSON before compression (so also after it): each
    append's rows and its body, every line encoded once."""
    chunks: list[tuple[list[StreamRow], bytes]] = []
    rows_of_chunk: list[StreamRow] = []
    lines: list[bytes] = []
    size = 0
    for row in rows:
        line = row.line.encode() + b"\n"
        if rows_of_chunk and size + len(line) > MAX_REQUEST_BYTES:
            chunks.append((rows_of_chunk, b"".join(lines)))
            rows_of_chunk, lines, size = [], [], 0
        rows_of_chunk.append(row)
        lines.append(line)
        size += len(line)
    if rows_of_chunk:
        chunks.append((rows_of_chunk, b"".join(lines)))
    return chunks
