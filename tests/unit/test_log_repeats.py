"""A library's repeated log lines pass once per window, and the next one through counts those held back."""

from __future__ import annotations

import logging

import pytest

from caves_faust.observability.logs import Repeats, quiet_repeats


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def lines():
    """What a handler on the test loggers receives, formatted."""
    received: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            received.append(record.getMessage())

    handler = Keep()
    parent = logging.getLogger("chatty")
    parent.addHandler(handler)
    parent.setLevel(logging.INFO)
    yield received
    parent.removeHandler(handler)
    for logger in (parent, logging.getLogger("chatty.conn")):
        logger.filters.clear()


def test_repeats_within_the_window_are_held_back_and_counted_by_the_next_line_through(lines):
    clock = Clock()
    log = logging.getLogger("chatty.conn")
    log.addFilter(Repeats(window_seconds=10, clock=clock))
    for attempt in range(50):  # a refused connection every 100 ms for 5 s
        log.error("Unable connect to node with id %s: %s", 1, f"refused #{attempt}")
        clock.now += 0.1
    log.warning("Marking the coordinator dead (node %s)", 1)  # another kind: through at once
    clock.now += 10
    log.error("Unable connect to node with id %s: %s", 1, "refused again")

    assert lines == [
        "Unable connect to node with id 1: refused #0",
        "Marking the coordinator dead (node 1)",
        "Unable connect to node with id 1: refused again [49 more like this in the last 15s]",
    ]


def test_every_logger_under_the_prefix_is_quieted(lines):
    logging.getLogger("chatty.conn")  # exists before, as aiokafka's do once imported
    quiet_repeats(("chatty",), window_seconds=60)
    for _ in range(3):
        logging.getLogger("chatty").error("Unable to update metadata from %s", [1])
        logging.getLogger("chatty.conn").error("Connection at %s closed", "127.0.0.1:9092")
    assert lines == ["Unable to update metadata from [1]", "Connection at 127.0.0.1:9092 closed"]


def test_information_lines_always_go_through(lines):
    log = logging.getLogger("chatty.conn")
    log.addFilter(Repeats(window_seconds=60, clock=Clock()))
    for generation in (2, 3):  # two rebalances a few seconds apart: each is news
        log.info("Joined group %r (generation %s)", "caves_faust", generation)
    assert lines == ["Joined group 'caves_faust' (generation 2)", "Joined group 'caves_faust' (generation 3)"]
