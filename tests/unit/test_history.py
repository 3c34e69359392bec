"""The history generator's calendar and sales, and the row checks of `history load` (no Snowflake here)."""

from __future__ import annotations

import io
import re
import sqlite3
import subprocess
import sys
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from caves_faust.generator.events import FIRST_ORDER_LINE_IDS, catalog
from caves_faust.history import calendar, generation
from caves_faust.history.progress import Progress
from caves_faust.history.sqlite_file import (
    COLUMNS,
    BadRow,
    CheckedSale,
    HistoryFile,
    UnreadableFile,
    check,
    check_row,
)

PARIS = ZoneInfo("Europe/Paris")
YEAR = generation.days_ending_before(date(2026, 12, 7), 365)


def sales_by_day(seed: int = 0) -> dict[date, list[generation.Sale]]:
    return {day: generation.sales_on(day, seed, PARIS) for day in YEAR}


@pytest.fixture(scope="module")
def year() -> dict[date, list[generation.Sale]]:
    return sales_by_day()


def test_the_days_end_the_day_before_end() -> None:
    assert YEAR[0] == date(2025, 12, 7) and YEAR[-1] == date(2026, 12, 6) and len(set(YEAR)) == 365


def test_boutiques_close_on_sundays_and_saturday_is_the_busiest_day(year) -> None:
    by_weekday: Counter[int] = Counter()
    for day, lines in year.items():
        by_weekday[day.weekday()] += len(lines)
        if day.weekday() == calendar.SUNDAY:
            assert {line.sales_channel for line in lines} <= {"E-com"}, day
    assert by_weekday.most_common(1)[0][0] == 5  # Saturday
    assert by_weekday[calendar.SUNDAY] < min(by_weekday[d] for d in range(6))


def test_december_is_the_busiest_month_and_rose_sells_in_summer(year) -> None:
    months: Counter[int] = Counter()
    rose: Counter[int] = Counter()
    for day, lines in year.items():
        months[day.month] += len(lines)
        rose[day.month] += sum(line.category == "Rosé" for line in lines)
    assert months.most_common(1)[0][0] == 12
    assert rose[7] / months[7] > 2 * rose[12] / months[12]


def test_discounts_are_occasional(year) -> None:
    lines = [line for day_lines in year.values() for line in day_lines]
    discounted = sum(line.discount > 0 for line in lines) / len(lines)
    assert 0.05 < discounted < 0.3


def test_lines_keep_the_live_catalogue_and_their_own_day(year) -> None:
    products = catalog()
    for day, lines in year.items():
        for line in lines:
            product = products[line.product_id]
            assert (line.product_name, line.category, line.unit_price, line.bottle_size_liters) == (
                product.name, product.category, product.unit_price, product.bottle_size_liters)
            moment = datetime.fromisoformat(line.ordered_at)
            assert moment.utcoffset() is not None and moment.astimezone(PARIS).date() == day
            assert line.total_price == round(line.quantity * line.unit_price * (1 - line.discount), 2)


def test_ids_are_unique_far_from_the_live_generators_and_a_day_is_the_same_in_every_file(year) -> None:
    ids = [line.order_line_id for lines in year.values() for line in lines]
    assert len(ids) == len(set(ids)) and min(ids) > FIRST_ORDER_LINE_IDS[1] * 1000
    shorter = generation.days_ending_before(date(2026, 6, 1), 10)
    again = {day: generation.sales_on(day, 0, PARIS) for day in shorter}
    assert again == {day: year[day] for day in shorter}
    assert generation.sales_on(shorter[0], 1, PARIS) != year[shorter[0]]


def test_a_file_is_written_whole(tmp_path: Path) -> None:
    out = tmp_path / "h.db"
    days = generation.days_ending_before(date(2026, 3, 30), 3)  # across the change to summer time
    written = generation.write(out, generation.sales(days, 0, PARIS))
    with sqlite3.connect(out) as db:
        assert db.execute("SELECT COUNT(*) FROM sales").fetchone()[0] == written > 0
    assert not (tmp_path / "h.db.partial").exists()


GOOD = {"rowid": 1, "order_line_id": 7, "ordered_at": "2026-01-15T23:30:00+01:00", "customer_id": 3,
        "product_id": 1001, "product_name": "Chablis", "category": "Blanc", "quantity": 2, "unit_price": 10.0,
        "discount": 0.1, "total_price": 18.0, "bottle_size_liters": 0.75, "sales_channel": "E-com"}


@pytest.mark.parametrize("change, where, reason", [
    ({"quantity": 0}, "order_line_id 7", "quantity must be > 0, got 0"),
    ({"quantity": -2}, "order_line_id 7", "quantity must be > 0, got -2"),
    ({"quantity": "six"}, "order_line_id 7", "quantity must be an integer, got 'six'"),
    ({"quantity": 2.5}, "order_line_id 7", "quantity must be an integer, got 2.5"),
    ({"customer_id": None}, "order_line_id 7", "missing customer_id"),
    ({"order_line_id": None}, "rowid 1", "missing order_line_id"),
    ({"order_line_id": "x7"}, "rowid 1 (order_line_id 'x7')", "order_line_id must be an integer, got 'x7'"),
    ({"ordered_at": "15/01/2026"}, "order_line_id 7", "ordered_at is not ISO 8601: '15/01/2026'"),
    ({"ordered_at": "2026-01-15T23:30:00"}, "order_line_id 7", "ordered_at has no UTC offset: '2026-01-15T23:30:00'"),
    ({"unit_price": "dix"}, "order_line_id 7", "unit_price must be a number, got 'dix'"),
    ({"discount": 15.0}, "order_line_id 7", "discount must be a fraction between 0 and 1, got 15.0"),
    ({"sales_channel": 4}, "order_line_id 7", "sales_channel must be text, got 4"),
])
def test_a_bad_row_is_named_with_its_reason(change, where, reason) -> None:
    assert check({**GOOD, **change}) == BadRow(where, reason)
    assert check_row(as_read({**GOOD, **change})) == BadRow(where, reason)


def as_read(values: dict) -> tuple:
    return tuple(values.get(name) for name in ("rowid", *COLUMNS))


@pytest.mark.parametrize("change", [{}, {"discount": None, "product_name": None, "unit_price": 10}, {"discount": 1},
                                    {"ordered_at": "2026-01-15T22:30:00Z"}, {"total_price": 0.0}, {"quantity": True},
                                    {"unit_price": float("nan")}, {"total_price": float("inf")}, {"discount": -0.1}])
def test_the_quick_check_of_a_row_as_read_agrees_with_the_full_one(change) -> None:
    assert check_row(as_read({**GOOD, **change})) == check({**GOOD, **change})


def test_a_good_row_keeps_its_values_and_optional_fields_may_be_missing() -> None:
    checked = check({**GOOD, "discount": None, "product_name": None, "unit_price": 10})
    assert isinstance(checked, CheckedSale) and checked.order_line_id == 7
    assert checked.values[1] == "2026-01-15T23:30:00+01:00" and checked.values[7] == 10
    in_utc = check({**GOOD, "ordered_at": "2026-01-15T22:30:00Z"})
    assert isinstance(in_utc, CheckedSale) and in_utc.values[1] == "2026-01-15T22:30:00+00:00"


def test_a_file_is_read_in_order_with_a_repeated_id_bad(tmp_path: Path) -> None:
    path = tmp_path / "no_key.db"
    with sqlite3.connect(path) as db:  # no primary key: an id may repeat
        db.execute("CREATE TABLE sales (order_line_id, ordered_at, customer_id, product_id, product_name, category, "
                   "quantity, unit_price, discount, total_price, bottle_size_liters, sales_channel)")
        for line_id in (5, 3, 5, 4):
            db.execute("INSERT INTO sales VALUES (?, '2026-01-15T23:30:00+01:00', 1, 1001, NULL, NULL, 1, "
                       "NULL, NULL, NULL, NULL, NULL)", (line_id,))
    history = HistoryFile(path)
    rows = [row for batch in history.batches(2) for row in batch]
    assert [r.order_line_id if isinstance(r, CheckedSale) else str(r) for r in rows] == [
        3, 4, 5, "order_line_id 5: order_line_id twice in the file"]
    assert history.count() == 4


def test_a_file_that_is_not_a_history_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFile, match="no such file"):
        HistoryFile(tmp_path / "absent.db")
    (tmp_path / "text.db").write_text("order_line_id,quantity\n" * 100)
    with pytest.raises(UnreadableFile, match="not a SQLite file"):
        HistoryFile(tmp_path / "text.db")
    with sqlite3.connect(tmp_path / "other.db") as db:
        db.execute("CREATE TABLE sales (order_line_id INTEGER PRIMARY KEY, quantity INTEGER)")
    with pytest.raises(UnreadableFile, match="lacks the columns ordered_at, customer_id"):
        HistoryFile(tmp_path / "other.db")


def test_the_calendar_expects_a_year_of_about_a_hundred_thousand_lines() -> None:
    total = sum(calendar.lines_on(date(2026, 1, 1) + timedelta(days=n)) for n in range(365))
    assert 80_000 < total < 130_000


def test_the_generate_command_writes_the_days_before_end(tmp_path: Path) -> None:
    out = tmp_path / "cli.db"
    done = subprocess.run([sys.executable, "-m", "caves_faust", "history", "generate", "--days", "3", "--out",
                           str(out), "--end", "2026-03-30", "--seed", "5"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    days = generation.days_ending_before(date(2026, 3, 30), 3)
    expected = sum(len(generation.sales_on(day, 5, PARIS)) for day in days)
    assert f"history generate: {expected:,} order lines, 2026-03-27 to 2026-03-29 (seed 5)" in done.stdout
    with sqlite3.connect(out) as db:
        assert db.execute("SELECT COUNT(*) FROM sales").fetchone()[0] == expected
    missing = subprocess.run([sys.executable, "-m", "caves_faust", "history", "generate", "--days", "3"],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "needs --days N and --out PATH" in missing.stderr


class Terminal(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_the_progress_bar_shows_on_a_terminal_only() -> None:
    shown, hidden = Terminal(tty=True), Terminal(tty=False)
    for stream in (shown, hidden):
        progress = Progress("history load", 1000, stream=stream)
        progress.advance(250)
        progress.advance(750)  # the last step is always drawn
        progress.close()
    assert hidden.getvalue() == ""
    last = shown.getvalue().rstrip("\n").split("\r")[-1]
    assert re.fullmatch(r"history load \[#{30}\] 1,000/1,000 rows, [\d,]+ rows/s, ETA 0:00 ", last), last


def test_every_incremental_sales_table_of_the_old_layout_has_its_drop_statement() -> None:
    from caves_faust.snowflake.history_tables import DROP_SALES_TABLE, INCREMENTAL_SALES_TABLES

    assert set(DROP_SALES_TABLE) == set(INCREMENTAL_SALES_TABLES)
    assert all(statement.endswith(f".{name}") for name, statement in DROP_SALES_TABLE.items())
