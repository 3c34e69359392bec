"""Replays recognised by the letter they name: only a letter's first copy is written, and only its stored copy moves
the stock."""

from __future__ import annotations

from caves_faust.events.origin import Origin, origin_of
from caves_faust.events.received import Received
from caves_faust.sink.replays import first_copies, for_stock, origins
from tests.corpus import fake_event

LETTER = Origin("sales_events_dlq", 3, 41)
OTHER = Origin("sales_events_dlq", 3, 42)


def received(partition: int, offset: int, origin: Origin | None = None) -> Received:
    return Received(fake_event(partition, offset, headers=origin.headers() if origin else None))


def test_the_headers_name_the_letter_and_nothing_else_is_a_replay():
    assert origin_of(LETTER.headers()) == LETTER
    assert origin_of(dict(LETTER.headers())) == LETTER
    assert origin_of([("caves_faust.dlq.writer.topic", b"t"), ("caves_faust.dlq.writer.offset", b"x")]) is None
    assert origin_of(None) is None and origin_of([]) is None
    assert origins([received(0, 1), received(0, 2, LETTER)]) == {LETTER}


def test_only_the_first_copy_of_a_letter_not_stored_yet_is_written():
    batch = [received(3, 10), received(3, 11, LETTER), received(3, 12, LETTER), received(3, 13, OTHER)]
    stored = {OTHER: (3, 5)}

    written = first_copies(batch, stored)

    assert [e.offset for e in written] == [10, 11]
    assert stored == {OTHER: (3, 5), LETTER: (3, 11)}


def test_only_the_stored_copy_moves_the_stock_when_read_again():
    # After a crash the batch comes again, below the high-water mark: nothing is written, the stock sees it again.
    batch = [received(3, 10), received(3, 11, LETTER), received(3, 12, LETTER), received(3, 13, OTHER)]
    assert [e.offset for e in for_stock(batch, {LETTER: (3, 11), OTHER: (3, 5)})] == [10, 11]


def test_a_letter_of_a_recreated_dlq_topic_is_not_the_old_one_at_its_offset():
    """A DLQ topic deleted and created again restarts its offsets at 0: its letter at (3, 41) is another letter."""
    old, new = Origin("sales_events_dlq", 3, 41, topic_id="A"), Origin("sales_events_dlq", 3, 41, topic_id="B")
    assert origin_of(new.headers()) == new and new != old
    assert '"topic_id":"B"' in new.metadata() and "topic_id" not in LETTER.metadata()
    assert [e.offset for e in first_copies([received(3, 50, new)], {old: (3, 7)})] == [50]
