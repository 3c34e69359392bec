"""`faust -A caves_faust dlq stats|show` on a real DLQ topic, holding dead letters the test wrote itself (in the
worker's letter format): the counts, the filters and the payloads as received."""

from __future__ import annotations

import base64
import re
from collections import Counter
from datetime import UTC, datetime

import pytest

from tests.harness import Pipeline
from tests.integration.dead_letters import command, letter, write_letters

pytestmark = pytest.mark.integration

DAY_ONE = datetime(2026, 11, 29, 10, 0, tzinfo=UTC).timestamp()
DAY_TWO = datetime(2026, 11, 30, 15, 30, tzinfo=UTC).timestamp()
LATIN_1 = "Château Lafite, 12 bouteilles à 350 €".encode("cp1252")
BINARY = b"\x00\x01\x02\xff\xfe binary"


def corpus(topic: str) -> list[dict]:
    letters = []
    for offset in range(12):
        for partition in (0, 1):
            kind = ("not_json", "wrong_type", "missing_field")[offset % 3]
            payload = {"not_json": b"{truncated", "wrong_type": b'{"quantity": "six"}',
                       "missing_field": b'{"event_type": "ORDER_CREATED"}'}[kind]
            letters.append(letter(partition, offset, DAY_ONE if offset < 8 else DAY_TWO, kind, payload, topic))
    letters.append(letter(2, 1, DAY_TWO, "not_utf8", LATIN_1, topic))
    letters.append(letter(2, 2, DAY_TWO, "not_utf8", BINARY, topic))
    return letters


def dlq(pipeline: Pipeline, *args: str) -> str:
    return command(pipeline, "dlq", *args)


def shown(output: str) -> list[tuple[int, int]]:
    """(source partition, offset) of every letter `show` printed."""
    return [(int(p), int(o)) for p, o in re.findall(r"^\S+ \d+/\d+  from \S+ (\d+)/(\d+)  at ", output, re.MULTILINE)]


def section(output: str, title: str) -> dict[str, int]:
    body = output.split(f"{title}:\n", 1)[1].split("\nby ", 1)[0]
    counts = re.findall(r"^  (\S+)\s+([\d,]+)$", body, re.MULTILINE)
    return {name: int(count.replace(",", "")) for name, count in counts}


def test_stats_and_show_with_filters_and_payloads_as_received(pipeline: Pipeline):
    letters = corpus(pipeline.sales_topic)
    write_letters(pipeline, letters)
    write_letters(pipeline, [letters[0], letters[0], letters[-1]])  # as a producer's retries leave them: counted once

    stats = dlq(pipeline, "stats")
    assert f"dlq stats: {len(letters)} dead letters" in stats
    assert "  3 repeated copies of 2 letters counted once" in stats
    assert section(stats, "by error type") == Counter(item["error_type"] for item in letters)
    assert section(stats, "by source partition") == {"0": 12, "1": 12, "2": 2}
    assert section(stats, "by day (UTC, source event time)") == {"2026-11-29": 16, "2026-11-30": 10}

    # Every filter at once (each alone: tests/unit/test_dlq_filters.py).
    chosen = dlq(pipeline, "show", "--partition", "1", "--partition", "2", "--from-offset", "1", "--to-offset", "9",
                 "--since", "2026-11-30", "--until", "2026-11-30T15:30:01+00:00")
    assert sorted(shown(chosen)) == [(1, 8), (1, 9), (2, 1), (2, 2)], chosen
    latin_1 = LATIN_1.decode("cp1252")
    assert f"  payload (cp1252 text, from base64, {len(LATIN_1)} bytes):\n  {latin_1}\n" in chosen
    assert f"  payload (binary, base64, {len(BINARY)} bytes):\n  {base64.b64encode(BINARY).decode()}\n" in chosen
    assert "  payload (utf-8, 10 bytes):\n  {truncated\n" in chosen
    assert "  not_json: not_json at 1/9\n  key: 1009\n" in chosen

    first = dlq(pipeline, "show", "--error-type", "wrong_type", "--limit", "3")
    assert shown(first) == [(0, 1), (0, 4), (0, 7)], first  # DLQ order: a source partition's letters in offset order
