"""The filters of `dlq show` (and replay): each one alone, on letters in the worker's format."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from caves_faust.dlq.commands import IsoTime, LetterFilter, shown_payload
from caves_faust.dlq.log import StoredLetter

NOON = datetime(2026, 11, 30, 12, tzinfo=UTC)


def letter(partition: int, offset: int, error_type: str = "not_json", at: datetime = NOON, **fields) -> StoredLetter:
    return StoredLetter("dlq", 0, offset, 0, {
        "error_type": error_type, "topic": "sales", "partition": partition, "offset": offset,
        "timestamp": at.timestamp(), **fields})


LETTERS = [letter(0, 5), letter(1, 5, "wrong_type"), letter(1, 9, at=datetime(2026, 12, 1, tzinfo=UTC)),
           StoredLetter("dlq", 0, 99, 0, {})]


@pytest.mark.parametrize("letter_filter, kept", [
    (LetterFilter(), [0, 1, 2, 3]),
    (LetterFilter(error_types=frozenset({"wrong_type"})), [1]),
    (LetterFilter(error_types=frozenset({"unreadable"})), [3]),
    (LetterFilter(partitions=frozenset({1})), [1, 2]),
    (LetterFilter(from_offset=6), [2]),
    (LetterFilter(to_offset=5), [0, 1]),
    (LetterFilter(since=datetime(2026, 12, 1, tzinfo=UTC)), [2]),
    (LetterFilter(until=datetime(2026, 12, 1, tzinfo=UTC)), [0, 1]),  # the end is excluded
])
def test_each_filter_alone(letter_filter: LetterFilter, kept: list[int]):
    assert [i for i, item in enumerate(LETTERS) if letter_filter(item)] == kept


def test_times_without_a_zone_are_utc():
    assert IsoTime().convert("2026-11-30T12:00", None, None) == NOON
    assert IsoTime().convert("2026-11-30T13:00+01:00", None, None) == NOON


def test_control_characters_are_escaped_not_sent_to_the_terminal():
    how, text = shown_payload(letter(0, 1, payload="a\x1b[2Jb\tc", payload_encoding="utf-8", payload_bytes=8))
    assert (how, text) == ("utf-8, 8 bytes", "a\\x1b[2Jb\tc")
