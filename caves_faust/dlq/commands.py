"""`faust -A caves_faust dlq stats|show|replay`: dead letters a team can triage and, once the cause is fixed, replay.

Every action reads the DLQ topic with a group-less consumer (`dlq_log`) and takes the same filters, so that what
`show` lists is what `replay` replays. Times are the source events' Kafka timestamps, in UTC.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import click
from faust.cli import argument, option

from caves_faust.cli import ExitCodeCommand
from caves_faust.dlq.log import StoredLetter, once, read_letters
from caves_faust.dlq.replay import replay
from caves_faust.faust_app import app, settings

ACTIONS = ("stats", "show", "replay")
# Text payloads are printed as received, but for the control characters that would drive the terminal.
KEPT_CONTROLS = "\t\n"
# What a base64 payload (not UTF-8) is tried as before it is shown as base64: a Windows or Latin-1 text.
TEXT_ENCODINGS = ("utf-8", "cp1252")


class IsoTime(click.ParamType):
    """An ISO 8601 time (`2026-12-01`, `2026-12-01T09:30`, `...+01:00`); without a zone, UTC."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 time (e.g. 2026-12-01T09:30)", param, ctx)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class LetterFilter:
    error_types: frozenset[str] = frozenset()
    partitions: frozenset[int] = frozenset()  # source partitions
    from_offset: int | None = None  # source offsets, both ends included
    to_offset: int | None = None
    since: datetime | None = None  # source event time, start included, end excluded
    until: datetime | None = None

    def __call__(self, letter: StoredLetter) -> bool:
        source = letter.source
        partition, offset = (source[1], source[2]) if source else (None, None)
        when = source_time(letter)
        return ((not self.error_types or letter.error_type in self.error_types)
                and (not self.partitions or partition in self.partitions)
                and (self.from_offset is None or (offset is not None and offset >= self.from_offset))
                and (self.to_offset is None or (offset is not None and offset <= self.to_offset))
                and (self.since is None or (when is not None and when >= self.since))
                and (self.until is None or (when is not None and when < self.until)))

    def describe(self) -> str:
        parts = [f"{name} {value}" for name, value in (
            ("error type", ",".join(sorted(self.error_types))),
            ("partition", ",".join(map(str, sorted(self.partitions)))),
            ("from offset", self.from_offset), ("to offset", self.to_offset),
            ("since", self.since and self.since.isoformat()), ("until", self.until and self.until.isoformat()),
        ) if value not in (None, "")]
        return ", ".join(parts) or "none"


def source_time(letter: StoredLetter) -> datetime | None:
    timestamp = letter.fields.get("timestamp")
    if not isinstance(timestamp, (int, float)) or isinstance(timestamp, bool):
        return None
    return datetime.fromtimestamp(timestamp, tz=UTC)  # Faust's message timestamp: seconds


async def selected_letters(letter_filter: LetterFilter, limit: int | None,
                           repeated: Counter[tuple[str, int, int]] | None = None) -> list[StoredLetter]:
    """The letters that pass the filter, each once, in DLQ order (partition by partition), at most `limit`; the
    repeated copies left out are counted in `repeated`."""
    chosen: list[StoredLetter] = []
    async for letter in once(read_letters(settings.kafka_bootstrap, settings.dlq_topic), repeated):
        if letter_filter(letter):
            chosen.append(letter)
            if limit is not None and len(chosen) >= limit:
                break
    return chosen


def stats_lines(letters: list[StoredLetter]) -> list[str]:
    days = Counter(when.date().isoformat() if (when := source_time(letter)) else "unknown" for letter in letters)
    partitions = Counter(str(letter.source[1]) if letter.source else "unknown" for letter in letters)
    lines: list[str] = []
    for title, counts, order in (
        ("by error type", Counter(letter.error_type for letter in letters), _by_count),
        ("by source partition", partitions, _by_number),
        ("by day (UTC, source event time)", days, _by_name),
    ):
        lines.append(f"{title}:")
        width = max((len(name) for name in counts), default=0)
        lines += [f"  {name.ljust(width)}  {count:>8,}" for name, count in order(counts)]
    return lines


def _by_count(counts: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def _by_number(counts: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (not item[0].isdigit(), int(item[0]) if item[0].isdigit() else 0))


def _by_name(counts: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counts.items())


def shown_payload(letter: StoredLetter) -> tuple[str, str]:
    """(how it is shown, the payload as text): text as received; base64 decoded when it is text."""
    raw = letter.payload()
    size = letter.fields.get("payload_bytes", len(raw or b""))
    truncated = ", truncated" if letter.fields.get("payload_truncated") else ""
    if raw is None:
        return "none", ""
    if letter.fields.get("payload_encoding") != "base64":
        return f"utf-8, {size} bytes{truncated}", _terminal_safe(raw.decode("utf-8", errors="replace"))
    for encoding in TEXT_ENCODINGS:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        if all(c.isprintable() or c in KEPT_CONTROLS for c in text):
            return f"{encoding} text, from base64, {size} bytes{truncated}", text
    return f"binary, base64, {size} bytes{truncated}", str(letter.fields["payload"])


def _terminal_safe(text: str) -> str:
    return "".join(c if c.isprintable() or c in KEPT_CONTROLS else f"\\x{ord(c):02x}" for c in text)


def show_lines(letter: StoredLetter) -> list[str]:
    where = f"{letter.dlq_topic} {letter.dlq_partition}/{letter.dlq_offset}"
    if not letter.readable:
        return [f"{where}: not a dead letter of caves_faust (not a JSON object)"]
    source = letter.source
    origin = f"{source[0]} {source[1]}/{source[2]}" if source else "unknown source"
    when = source_time(letter)
    how, text = shown_payload(letter)
    key = letter.key()
    return [
        f"{where}  from {origin}  at {when.isoformat() if when else 'unknown time'}",
        f"  {letter.error_type}: {letter.fields.get('error_message', '')}",
        *([f"  key: {_terminal_safe(key.decode('utf-8', errors='replace'))}"] if key is not None else []),
        f"  payload ({how}):",
        f"  {text}",
    ]


Report = Callable[[str], None]


async def run(action: str, letter_filter: LetterFilter, limit: int | None, dry_run: bool, say: Report) -> int:
    repeated: Counter[tuple[str, int, int]] = Counter()
    letters = await selected_letters(letter_filter, limit if action != "stats" else None, repeated)
    say(f"dlq {action}: {len(letters):,} dead letters on {settings.dlq_topic} (filters: {letter_filter.describe()})")
    if repeated:
        say(f"  {repeated.total():,} repeated copies of {len(repeated):,} letters counted once (a letter sent again "
            "after a broker wrote it without answering)")
    if action == "stats":
        for line in stats_lines(letters):
            say(line)
        return 0
    if action == "replay":
        return await replay(letters, dry_run, say)
    for letter in letters:
        for line in show_lines(letter):
            say(line)
    return 0


@app.command(
    argument("action", type=click.Choice(ACTIONS)),
    option("--error-type", "error_types", multiple=True, help="Only this error type (repeatable)."),
    option("--partition", "partitions", type=click.IntRange(min=0), multiple=True,
           help="Only letters of this source partition (repeatable)."),
    option("--from-offset", type=click.IntRange(min=0), default=None, help="Source offsets from this one, included."),
    option("--to-offset", type=click.IntRange(min=0), default=None, help="Source offsets up to this one, included."),
    option("--since", type=IsoTime(), default=None, help="Source events from this time (ISO 8601, UTC by default)."),
    option("--until", type=IsoTime(), default=None, help="Source events before this time."),
    option("--limit", type=click.IntRange(min=1), default=None, help="show/replay: at most this many letters."),
    option("--dry-run", is_flag=True, default=False, help="replay: tell what would pass and what still fails."),
    base=ExitCodeCommand,
)
async def dlq(self: ExitCodeCommand, action: str, error_types: tuple[str, ...], partitions: tuple[int, ...],
              from_offset: int | None, to_offset: int | None, since: datetime | None, until: datetime | None,
              limit: int | None, dry_run: bool) -> int:
    """Dead letters: `stats` by error type, source partition and day; `show` them, payloads as received; `replay`
    those that pass today's rules (exit 1 when some still fail: they are listed, not replayed)."""
    letter_filter = LetterFilter(frozenset(error_types), frozenset(partitions), from_offset, to_offset, since, until)
    return await run(action, letter_filter, limit, dry_run, self.say)
