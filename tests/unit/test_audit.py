"""The audit's accounting: each offset below the committed one stored exactly once, as a row or a dead letter."""

from __future__ import annotations

from collections import Counter

from caves_faust.audit import AuditReport, PartitionAudit, StockAudit, account, differences
from caves_faust.events.origin import Origin


def test_every_offset_is_stored_once_as_a_row_or_a_letter():
    rows = Counter({0: 1, 1: 1, 3: 2, 5: 1})
    letters = Counter({2: 1, 5: 1, 7: 2})

    unaccounted, doubled = account(0, 8, rows, letters)

    assert unaccounted == [4, 6]
    assert doubled == {3: (2, 0), 5: (1, 1), 7: (0, 2)}


def test_only_the_offsets_of_the_range_are_accounted():
    assert account(2, 4, Counter({0: 5, 2: 1, 3: 1, 9: 2}), Counter()) == ([], {})


def test_a_product_absent_on_one_side_has_stock_zero_there():
    assert differences({"1": 5, "2": 0, "3": 4}, {"1": 5, "3": 3, "4": 0, "5": -1}) == {"3": (4, 3), "5": (0, -1)}


def test_a_letter_replayed_into_two_rows_is_doubled_and_named():
    clean = PartitionAudit(0, committed=5, rows=4, letters=1)
    report = AuditReport("sales", "group", [clean], {Origin("dlq", 2, 7): 2}, StockAudit("RAW_EVENTS_STREAM", 3))

    assert not report.clean and report.doubled == 1
    assert "doubled: dead letter dlq 2/7 replayed into 2 rows" in report.lines()
