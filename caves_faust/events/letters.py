"""A dead letter: an invalid input (or a row Snowflake refused) with its reason and its source coordinates, as the
DLQ topic carries it and DLQ_EVENTS stores it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from caves_faust.events.received import Received, encode_bytes
from caves_faust.events.validation import InvalidEvent

# Keep each dead letter well under Kafka's default 1 MB message limit, so that the DLQ write itself
# cannot fail on an oversized input; the original size is recorded. The bounds hold for the JSON text, where a
# control character takes 6 bytes: a 1 MB input of them made a 1.5 MB letter the producer refused, forever.
MAX_PAYLOAD_BYTES = 256 * 1024
MAX_KEY_BYTES = 16 * 1024


def encode_bounded(raw: bytes | None, limit: int) -> tuple[str | None, str, bool]:
    """(text, encoding, truncated): `encode_bytes` of the longest prefix that takes at most `limit` bytes in JSON."""
    if raw is None:
        return None, "none", False
    kept = raw[:limit]
    while True:
        text, encoding = encode_bytes(kept)
        size = len(json.dumps(text, ensure_ascii=False).encode("utf-8")) - 2
        if size <= limit:
            return text, encoding, len(kept) < len(raw)
        kept = kept[:len(kept) * limit // size]


@dataclass(frozen=True)
class DeadLetter(Received):
    error: InvalidEvent

    def to_json(self) -> bytes:
        return json.dumps(self.fields(), ensure_ascii=False).encode("utf-8")

    def fields(self) -> dict[str, Any]:
        """The letter as the DLQ topic carries it (DLQ_EVENTS's columns are named after these)."""
        message = self.event.message
        raw: bytes | None = message.value
        payload, encoding, truncated = encode_bounded(raw, MAX_PAYLOAD_BYTES)
        key, key_encoding, key_truncated = encode_bounded(message.key, MAX_KEY_BYTES)
        return {
            "error_type": self.error.error_type,
            "error_message": self.error.message,
            "payload": payload,
            "payload_encoding": encoding,
            "payload_bytes": len(raw) if raw is not None else 0,
            "payload_truncated": truncated,
            "topic": message.topic,
            "topic_id": self.topic_id,
            "partition": message.partition,
            "offset": message.offset,
            "timestamp": message.timestamp,
            "key": key,
            "key_encoding": key_encoding,
            "key_truncated": key_truncated,
        }
