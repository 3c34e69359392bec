"""Reading the DLQ back: a letter the topic holds twice (a producer's retry) is read once, its copies counted."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

from caves_faust.dlq.log import StoredLetter, once


def stored(dlq_offset: int, source_offset: int | None, source_partition: int = 3) -> StoredLetter:
    fields = {} if source_offset is None else {"topic": "sales_events", "partition": source_partition,
                                               "offset": source_offset, "error_type": "not_json"}
    return StoredLetter("sales_events_dlq", 1, dlq_offset, 1_800_000_000_000, fields)


async def read(letters: list[StoredLetter], repeated: Counter[tuple[str, int, int]]) -> list[StoredLetter]:
    async def topic() -> AsyncIterator[StoredLetter]:
        for letter in letters:
            yield letter

    return [letter async for letter in once(topic(), repeated)]


def test_each_letter_once_by_its_source_event_the_first_copy_kept_and_the_others_counted():
    topic = [stored(0, 7), stored(1, 8), stored(2, 7), stored(3, None), stored(4, None), stored(5, 8),
             stored(6, 7), stored(7, 7, source_partition=4)]
    repeated: Counter[tuple[str, int, int]] = Counter()

    letters = asyncio.run(read(topic, repeated))

    assert [letter.dlq_offset for letter in letters] == [0, 1, 3, 4, 7]  # unreadable ones name no event: each kept
    assert repeated == {("sales_events", 3, 7): 2, ("sales_events", 3, 8): 1}
