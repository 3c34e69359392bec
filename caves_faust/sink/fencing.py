"""Partitions fenced out of their channels (another writer reopened them) while the consumer still holds them:
given up once they are another worker's, taken back once the writer that reopened them proves a zombie."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

from caves_faust.sink.channels import StreamingWriter

# partition -> (since when it is held back, at which of its assignments)
Held = dict[int, tuple[float, int]]


@dataclass
class Fencing:
    owned: Callable[[], set[int]]  # the sales partitions the consumer holds now
    rebalancing: Callable[[], bool]  # whether a rebalance is under way (it waits for our unacknowledged events)
    wait_seconds: float  # how long a fenced partition still assigned to us waits before it is reopened
    assignments: Counter[int] = field(default_factory=Counter)  # partition -> times revoked or assigned

    def moved(self, partitions: Iterable[int]) -> None:
        """A rebalance revoked or assigned these partitions."""
        self.assignments.update(partitions)

    def settle(self, writer: StreamingWriter, held: Held, lost: set[int]) -> None:
        """A partition fenced out while assigned to us is the new owner's once a rebalance starts or went by (a
        zombie learns it was revoked within a heartbeat; the rebalance waits for these events, and if the
        partition stays ours Faust reads them again from the committed offset): it joins `lost`. Still ours after a
        whole session timeout without one, the writer that reopened its channel was the zombie: reopen it."""
        owned, rebalancing = self.owned(), self.rebalancing()
        for partition, (since, assignment) in list(held.items()):
            if rebalancing or partition not in owned or self.assignments[partition] != assignment:
                lost.add(partition)
                del held[partition]
            elif time.monotonic() - since >= self.wait_seconds:
                writer.forget({partition})
                del held[partition]
