"""`faust -A caves_faust history generate|load`: past sales made into a SQLite file, or loaded into Snowflake."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from pathlib import Path
from typing import Iterator
from zoneinfo import ZoneInfo

import click
from faust.cli import argument, option

from caves_faust.cli import ExitCodeCommand
from caves_faust.faust_app import app, settings
from caves_faust.history import generation
from caves_faust.history.loader import load
from caves_faust.history.progress import Progress
from caves_faust.history.sqlite_file import UnreadableFile
from caves_faust.snowflake.connection import describe
from caves_faust.snowflake.errors import WAREHOUSE_ERRORS
from caves_faust.snowflake.history_tables import HISTORY_TABLE

ACTIONS = ("generate", "load")
UNREADABLE = 2  # exit code: not a history file, nothing loaded
USAGE = 2  # exit code: a missing option or argument, as click's own


@app.command(
    argument("action", type=click.Choice(ACTIONS)),
    argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path)),
    option("--days", type=click.IntRange(min=1), default=None, help="generate: how many days of sales."),
    option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
           help="generate: the SQLite file to write (replaced once complete)."),
    option("--seed", type=int, default=generation.DEFAULT_SEED, show_default=True,
           help="generate: same seed, same sales on a given day, whatever --days and --end."),
    option("--end", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
           help="generate: the day after the last one generated. [default: today, in SHOP_TIMEZONE]"),
    base=ExitCodeCommand,
)
async def history(self: ExitCodeCommand, action: str, path: Path | None, days: int | None, out: Path | None,
                  seed: int, end: datetime | None) -> int:
    """Past sales: `generate --days N --out PATH` writes N days of them to a SQLite file; `load PATH` loads one
    into BATCH_DATA.SALES, each order line once (exit 1 when some rows are bad: they are named, the rest loaded)."""
    if action == "generate":
        if days is None or out is None:
            return _usage("history generate needs --days N and --out PATH")
        return await asyncio.to_thread(_generate, self, days, out, seed, end.date() if end else None)
    if path is None:
        return _usage("history load needs the PATH of a history file")
    self.say(f"history load: {path} into {HISTORY_TABLE} on Snowflake {describe(settings)}")
    try:
        result = await asyncio.to_thread(load, path, settings, self.say)
    except UnreadableFile as exc:
        self.say(f"history load: nothing loaded: {exc}")
        return UNREADABLE
    except WAREHOUSE_ERRORS as exc:  # the batches committed stay, once; loading again adds the rest
        self.say(f"history load: stopped, Snowflake failed: {exc}; the batches loaded stay, run it again for the rest")
        return 1
    self.say(result.summary(path))
    return 0 if result.complete else 1


def _usage(message: str) -> int:
    click.echo(f"Error: {message} (faust -A caves_faust history --help)", err=True)
    return USAGE


def _generate(command: ExitCodeCommand, days: int, out: Path, seed: int, end: date | None) -> int:
    zone = ZoneInfo(settings.shop_timezone)
    last = end or datetime.now(zone).date()
    calendar_days = generation.days_ending_before(last, days)
    progress = Progress("history generate", len(calendar_days), unit="days")

    def by_day() -> Iterator[generation.Sale]:
        for day in calendar_days:
            yield from generation.sales_on(day, seed, zone)
            progress.advance(1)

    try:
        written = generation.write(out, by_day())
    finally:
        progress.close()
    command.say(f"history generate: {written:,} order lines, {calendar_days[0]} to {calendar_days[-1]} "
                f"(seed {seed}), in {progress.seconds:.1f}s, written to {out}")
    return 0
