"""The generator's cellar: bottles on hand per shelf (a product at a location), so that the events it makes add
up like a shop's stock.

Invariant: a shelf's stock on hand stays between 0 and its full shelf plus less than a case, at every event: a
sale, a spoilage or a correction that would leave that range is not made. A shelf at or below its reorder point
goes on order; the next replenishment delivers the longest-waiting one back up to its full shelf, in whole cases
(a correction that lifts it above the reorder point cancels the order). Every shelf starts empty and on order,
and the shop opens once each has had its first delivery, its opening stock.
"""

from __future__ import annotations

import math
from typing import Hashable

CASE_SIZE = 6  # bottles in a case: deliveries come in whole cases
REORDER_SHARE = 1 / 3  # of the full shelf: at or below it, the product is on order


class Cellar:
    """Stock on hand and open supplier orders, per shelf (any key: the generator's are (product id, location))."""

    def __init__(self, full_shelves: dict[Hashable, int]):
        self.full_shelves = full_shelves
        self.on_hand = dict.fromkeys(full_shelves, 0)
        self.on_order: dict[Hashable, None] = dict.fromkeys(full_shelves)  # insertion order: longest waiting first
        self._never_delivered = set(full_shelves)

    @property
    def is_open(self) -> bool:
        """Every product has had its opening stock."""
        return not self._never_delivered

    def next_delivery(self) -> Hashable | None:
        """The shelf on order for the longest, if any."""
        return next(iter(self.on_order), None)

    def delivery(self, shelf: Hashable) -> int:
        """Bottles, in whole cases, that bring the shelf on order back to its full shelf."""
        return CASE_SIZE * math.ceil((self.full_shelves[shelf] - self.on_hand[shelf]) / CASE_SIZE)

    def allows(self, shelf: Hashable, change: int) -> bool:
        return 0 <= self.on_hand[shelf] + change < self.full_shelves[shelf] + CASE_SIZE

    def move(self, shelf: Hashable, change: int) -> None:
        """Apply a movement the cellar allows: a shelf at or below its reorder point is on order, else not."""
        self.on_hand[shelf] += change
        if change > 0:
            self._never_delivered.discard(shelf)
        if self.on_hand[shelf] <= self.reorder_point(shelf):
            self.on_order.setdefault(shelf)
        else:
            self.on_order.pop(shelf, None)

    def reorder_point(self, shelf: Hashable) -> int:
        return int(self.full_shelves[shelf] * REORDER_SHARE)
