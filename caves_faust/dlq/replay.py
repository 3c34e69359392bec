"""`dlq replay`: dead letters whose payload passes today's rules (validation.py) go back to the sales topic.

Each goes to its source partition, keyed as the original, with headers naming the letter (`replays.Origin`): the
sink stores each letter once however often it is replayed. A letter that fails again is reported and not sent, so
nothing loops through the DLQ; nor is a letter whose payload was truncated (what is left is not the event).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from caves_faust.dlq.log import StoredLetter
from caves_faust.events.origin import Origin
from caves_faust.events.validation import InvalidEvent, validate
from caves_faust.faust_app import settings
from caves_faust.kafka.topic_ids import current_topic_id

SHOWN_FAILURES = 20  # letters still failing named one by one; the rest are counted


@dataclass(frozen=True)
class Verdict:
    letter: StoredLetter
    failure: str | None  # why it cannot be replayed; None: it passes today's rules
    partition: int = -1  # the source partition, where a replay goes

    @property
    def kind(self) -> str:
        return (self.failure or "").split(":", 1)[0]


def judge(letter: StoredLetter) -> Verdict:
    source = letter.source
    if source is None:
        return Verdict(letter, "unreadable: not a dead letter of caves_faust")
    if source[0] != settings.sales_topic:
        return Verdict(letter, f"other_topic: from {source[0]}, not {settings.sales_topic}")
    if letter.fields.get("payload_truncated"):
        return Verdict(letter, "payload_truncated: the letter holds only the start of the payload")
    try:
        validate(letter.payload())
    except InvalidEvent as error:
        return Verdict(letter, str(error))
    return Verdict(letter, None, source[1])


async def send_back(passing: list[Verdict]) -> None:
    """To the source partition, keyed as the original, named by headers; returns once the broker has them all."""
    # Which life of the DLQ topic the letters are read from: its offsets name a letter in that life only.
    dlq_topic_id = await current_topic_id(settings.kafka_bootstrap, settings.dlq_topic)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        pending = []
        for verdict in passing:
            letter = verdict.letter
            origin = Origin(letter.dlq_topic, letter.dlq_partition, letter.dlq_offset, letter.source,
                            topic_id=dlq_topic_id)
            pending.append(await producer.send(settings.sales_topic, letter.payload(), key=letter.key(),
                                               partition=verdict.partition, headers=origin.headers()))
        for delivery in pending:
            await delivery
    finally:
        await producer.stop()


async def replay(letters: list[StoredLetter], dry_run: bool, say: Callable[[str], None]) -> int:
    """0 when every letter passes (and, unless `dry_run`, was sent back), 1 when some still fail (reported)."""
    verdicts = [judge(letter) for letter in letters]
    passing = [v for v in verdicts if v.failure is None]
    failing = [v for v in verdicts if v.failure is not None]
    if dry_run:
        say(f"dlq replay --dry-run: {len(passing):,} would pass today's rules and be replayed to "
            f"{settings.sales_topic}; {len(failing):,} still fail; nothing sent")
    else:
        await send_back(passing)
        say(f"dlq replay: {len(passing):,} replayed to {settings.sales_topic} (each stored once, however often "
            f"replayed); {len(failing):,} still fail, not replayed")
    for kind, count in sorted(Counter(v.kind for v in failing).items()):
        say(f"  still failing: {kind}: {count:,}")
    for verdict in failing[:SHOWN_FAILURES]:
        letter = verdict.letter
        say(f"  {letter.dlq_topic} {letter.dlq_partition}/{letter.dlq_offset}: {verdict.failure}")
    return 1 if failing else 0
