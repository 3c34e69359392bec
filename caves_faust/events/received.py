"""What every output of the intake shares: an input event with where it came from, and raw bytes as JSON text."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from faust.types import EventT


def encode_bytes(raw: bytes | None) -> tuple[str | None, str]:
    """(text, encoding): UTF-8 text when it is, else base64."""
    if raw is None:
        return None, "none"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


@dataclass(frozen=True, slots=True)
class Received:
    """An input event and where it came from: `topic_id` tells which life of its topic (a topic deleted and created
    again restarts its offsets at 0), None when the broker gives no topic ids (see kafka/topic_ids.py)."""

    event: EventT
    topic_id: str | None = field(default=None, kw_only=True)

    @property
    def partition(self) -> int:
        return self.event.message.partition

    @property
    def offset(self) -> int:
        return self.event.message.offset
