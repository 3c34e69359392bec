"""The order of the batches in the streaming sink: several may be in it at once; they go to a pipe's channels one
at a time and in batch order, and come out of the sink in batch order."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from caves_faust.sink.channels import StreamingWriter


@dataclass(eq=False)
class Turn:
    """A batch's place in the order batches go to the channels and come out of the sink."""

    previous: Turn | None
    # writer -> its epoch when all the batch's rows for it were handed over (None: the batch had none for it)
    handed: dict[StreamingWriter, int | None] = field(default_factory=dict)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    stored: bool = False
    lost: set[int] = field(default_factory=set)  # the partitions it gave up (fenced out, another worker's now)

    @classmethod
    def after(cls, last: Turn | None) -> Turn:
        """The next batch's turn: a batch stored is out of its way; one that failed stays in the way of every later
        one (none of them may be acknowledged)."""
        return cls(None if last is None or last.finished.is_set() and last.stored else last)

    def may_append(self, writer: StreamingWriter) -> bool:
        """Whether this batch may go to the writer's channels: the one before is out of the sink, or all its rows
        went to these channels and none was reopened or dropped since (they commit in the order given)."""
        previous = self.previous
        if previous is None or previous.finished.is_set():
            return True
        handed = previous.handed.get(writer, -1)
        return handed is None or handed == writer.epoch

    def previous_failed(self) -> bool:
        return self.previous is not None and self.previous.finished.is_set() and not self.previous.stored
